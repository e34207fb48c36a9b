"""What the API shows of the L1 inbox (GET /v1/inbox): the contract's inbox and deadline, the engine's cursor, and
the forced requests logged on-chain that the engine has not taken yet, each with the time by which a recorded
checkpoint must cover it before anyone may freeze the exchange (checkpoints.vy, "generation" rule)."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.inbox import InboxCursor
from .rpc import Web3ChainRpc


@dataclass(frozen=True, slots=True)
class PendingForced:
    seq: int
    trader: bytes
    request_type: int
    block_number: int
    deadline: int  # unix time: covered by a recorded checkpoint by then, or anyone may freeze


@dataclass(frozen=True, slots=True)
class InboxReport:
    contract: InboxCursor  # the inbox head on-chain
    engine: InboxCursor  # what the engine has taken
    covered: int  # entries the latest recorded checkpoint covers
    pending_since: int | None  # start of the generation the deadline runs for (None: nothing pending)
    forced_deadline: int
    freeze_due_at: int  # when anyone may freeze if nothing changes (escape delay or the forced deadline)
    frozen: bool
    pending_forced: tuple[PendingForced, ...]


def deadline_of(position: int, generation_count: int, generation_since: int, forced_deadline: int) -> int:
    """The deadline of the inbox entry at `position` (1-based over all entries): inside the running generation it
    is that generation's; after it, one generation later at the latest."""
    if position <= generation_count:
        return generation_since + forced_deadline
    return generation_since + 2 * forced_deadline


def freeze_due(
    last_checkpoint_at: int, escape_delay: int, covered: int, generation_count: int, generation_since: int,
    forced_deadline: int,
) -> int:
    """When anyone may freeze (checkpoints.vy `freeze`): the escape delay after the last checkpoint, or earlier, the
    forced deadline after the pending generation's start when recorded checkpoints do not cover it."""
    due = last_checkpoint_at + escape_delay
    if generation_count > covered:
        due = min(due, generation_since + forced_deadline)
    return due


async def inbox_report(rpc: Web3ChainRpc, engine: InboxCursor, engine_block: int, trader: bytes | None = None) -> InboxReport:
    """`engine_block`: the last L1 block the engine took (forced requests after it are pending)."""
    fns = rpc.exchange.functions
    head = await rpc.inbox_head()
    covered, generation_count, generation_since = await fns.inbox_coverage().call()
    forced_deadline = int(await fns.forced_deadline().call())
    due = freeze_due(
        int(await fns.last_checkpoint_at().call()), int(await fns.escape_delay().call()), covered, generation_count,
        generation_since, forced_deadline,
    )
    frozen = bool(await fns.frozen().call())
    pending = generation_count > covered
    pending_forced = []
    if head.forced > engine.forced:
        latest = await rpc.block_number()
        for event in await rpc.forced_requests(engine_block + 1, latest):
            if event.seq <= engine.forced or (trader is not None and event.trader != trader):
                continue
            position = event.deposits_before + event.seq
            pending_forced.append(PendingForced(
                event.seq, event.trader, event.request_type, event.block_number,
                deadline_of(position, generation_count, generation_since, forced_deadline) if pending else 0,
            ))
    return InboxReport(
        head, engine, int(covered), int(generation_since) if pending else None, forced_deadline, due, frozen,
        tuple(pending_forced),
    )


