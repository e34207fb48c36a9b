"""`ddx audit`: an independent check anyone can run.

Replays the request log (from a node's public log endpoint, or its history database) through the same state
machine and engine every operator runs, and compares the root it recomputes for each epoch with the root the
contract recorded for that epoch. It also checks every chain block the log sequenced against the auditor's own RPC
(block hash, and the deposits exactly as the contract logged them), so a deposit that never happened shows up
even where no checkpoint exists yet.

The comparison (`compare`) is pure; replay needs the genesis file all operators use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from ..chain.core.blocks import SequencedBlock
from ..chain.core.verification import Verdict, verify_block
from ..engine.commands import ChainBlock, decode_command
from ..engine.config import GenesisConfig
from ..engine.engine import Engine
from ..engine.updates import Accepted
from ..node.backfill import parse_request_log_item
from ..node.history import History
from ..protocol.requests import ENTRY_OPERATOR_COMMAND

MATCH, MISMATCH, NOT_REPLAYED = "match", "mismatch", "not_replayed"
LOG_PAGE = 1000


@dataclass(frozen=True)
class RecordedCheckpoint:
    epoch: int
    root: bytes
    l1_block_number: int
    l1_block_hash: bytes
    block_number: int  # where the contract recorded it


@dataclass(frozen=True)
class EpochAudit:
    epoch: int
    verdict: str
    recorded_root: bytes
    recomputed_root: bytes | None


@dataclass
class AuditReport:
    epochs: list[EpochAudit]
    entries_replayed: int
    last_epoch_replayed: int
    block_problems: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        """Recorded checkpoints actually compared with a replayed root."""
        return sum(e.verdict in (MATCH, MISMATCH) for e in self.epochs)

    @property
    def ok(self) -> bool:
        """Every recorded root matches, every chain block checks, and something was checked: an audit of a log
        that froze epochs none of which is recorded on-chain fails (checkpoints are not being recorded)."""
        nothing_checked = self.checked == 0 and self.last_epoch_replayed > 0
        return not self.block_problems and not nothing_checked and all(e.verdict != MISMATCH for e in self.epochs)

    def lines(self) -> list[str]:
        out = [f"replayed {self.entries_replayed} log entries up to epoch {self.last_epoch_replayed}"]
        for e in self.epochs:
            recomputed = "-" if e.recomputed_root is None else "0x" + e.recomputed_root.hex()
            out.append(f"epoch {e.epoch}: {e.verdict:<12} recorded 0x{e.recorded_root.hex()} recomputed {recomputed}")
        out.extend(f"chain block: {p}" for p in self.block_problems)
        matched = sum(e.verdict == MATCH for e in self.epochs)
        mismatched = sum(e.verdict == MISMATCH for e in self.epochs)
        if self.checked == 0 and self.last_epoch_replayed > 0:
            out.append(f"no recorded checkpoint to compare: the log froze {self.last_epoch_replayed} epoch(s), the "
                       "contract recorded none of them (are checkpoints being relayed?)")
        elif self.checked == 0:
            out.append("nothing to compare yet: no epoch frozen, no checkpoint recorded")
        out.append(
            f"{'OK' if self.ok else 'FAILED'}: {matched} recorded checkpoint(s) match, {mismatched} differ, "
            f"{sum(e.verdict == NOT_REPLAYED for e in self.epochs)} beyond the log, {len(self.block_problems)} chain block problem(s)"
        )
        return out


def compare(recorded: Iterable[RecordedCheckpoint], recomputed: dict[int, bytes]) -> list[EpochAudit]:
    """Each recorded checkpoint against the root the replay froze for that epoch (pure)."""
    out = []
    for cp in sorted(recorded, key=lambda c: c.epoch):
        mine = recomputed.get(cp.epoch)
        if mine is None:
            out.append(EpochAudit(cp.epoch, NOT_REPLAYED, cp.root, None))
        else:
            out.append(EpochAudit(cp.epoch, MATCH if mine == cp.root else MISMATCH, cp.root, mine))
    return out


class Replay:
    """The replicated state machine, fed log entries in order; remembers each epoch's frozen root and every
    chain block it sequenced."""

    def __init__(self, domain, genesis: GenesisConfig) -> None:
        from ..node.engine_adapter import EngineAdapter
        from ..node.state_machine import ExchangeStateMachine

        self.adapter = EngineAdapter(Engine(genesis))
        self.machine = ExchangeStateMachine(domain, self.adapter)
        self.roots: dict[int, bytes] = {}
        self.blocks: list[SequencedBlock] = []
        self.entries = 0

    def apply(self, log_index: int, entry: bytes) -> None:
        before = self.adapter.engine.epoch
        applied = self.machine.apply(log_index, entry)
        self.entries += 1
        engine = self.adapter.engine
        if engine.epoch != before:
            self.roots[engine.epoch] = engine.frozen_root(engine.epoch)
        if applied is not None and entry[:1] == bytes([ENTRY_OPERATOR_COMMAND]) and applied.updates:
            if isinstance(applied.updates[0].update, Accepted):
                command = decode_command(entry[1:])
                if isinstance(command, ChainBlock):
                    self.blocks.append(SequencedBlock.from_command(command))


async def log_from_api(session, url: str) -> AsyncIterator[tuple[int, bytes]]:
    """(log index, entry) pairs from a node's `GET /v1/requests`, page by page until the end."""
    first = 1
    while True:
        async with session.get(f"{url.rstrip('/')}/v1/requests", params={"from": first, "to": first + LOG_PAGE - 1}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{url}/v1/requests answered HTTP {resp.status}")
            entries = (await resp.json())["entries"]
        if not entries:
            return
        for expected, item in enumerate(entries, first):
            stated = parse_request_log_item(item, expected)
            yield stated.log_index, stated.entry
        following = first + len(entries)
        if following <= first:
            raise RuntimeError(f"{url}/v1/requests did not advance past request {first}")
        first = following


def log_from_history(path) -> Iterable[tuple[int, bytes]]:
    """(log index, entry) pairs from a node's history database (read-only use)."""
    history = History(path)
    try:
        first = 1
        while True:
            entries = history.requests(first, first + LOG_PAGE - 1)
            if not entries:
                return
            for applied in entries:
                yield applied.log_index, applied.entry
            first = entries[-1].request_index + 1
    finally:
        history.close()


async def check_blocks(rpc, blocks: list[SequencedBlock]) -> list[str]:
    """Every sequenced chain block against the auditor's RPC (no confirmation wait: they are history)."""
    problems = []
    head = await rpc.block_number()
    for block in blocks:
        headers = await rpc.headers(block.number, block.number)
        events = await rpc.inbox_events(block.number, block.number)
        result = verify_block(block, local_head=head, confirmations=0, canonical=headers[0] if headers else None, events=events)
        if result.verdict is not Verdict.CONFIRMED:
            problems.append(result.reason)
    return problems


async def audit(rpc, replay: Replay, from_block: int) -> AuditReport:
    recorded = [RecordedCheckpoint(*fields) for fields in await rpc.recorded_checkpoints(from_block)]
    return AuditReport(
        epochs=compare(recorded, replay.roots),
        entries_replayed=replay.entries,
        last_epoch_replayed=replay.adapter.engine.epoch,
        block_problems=await check_blocks(rpc, replay.blocks),
    )
