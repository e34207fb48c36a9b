"""The chain watcher: runs the pure `Follower` against an RPC and hands confirmed blocks to the leader.

`poll_once()` is one round; the leader's loop (operator_chain.py) calls it while this node leads, and backs off
with `backoff` after RPC failures, which `health` counts.

The leader's node gives it two callables: `resume()` (where sequencing stands: the engine's last sequenced block,
its hash and its inbox cursor) and `handoff(block)` (propose the chain-block command; raises if it could not).
Before handing a block over, the watcher checks that the logs it read add up to the contract's own inbox head at
that block (counts and rolling hash), for every block with inbox entries and the last of each round: an RPC that
drops a log stops ingestion with an alarm instead of letting the leader sequence past an entry.
A failed handoff restarts the follower from `resume()`, so a block is handed over again rather than lost; the
engine refuses a block it already has (not newer), so a repeat is harmless. RPC failures are retried with backoff
and reported in `status()`; an alarm (deposit gap, deep reorg) stops ingestion until an operator restarts it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import DdxError
from ..protocol.inbox import EMPTY_INBOX, InboxCursor
from .core.blocks import ConfirmedBlock
from .core.follower import FetchHeaders, FetchInbox, Follower, FollowerConfig, Halted, Idle
from .core.relay_policy import Backoff
from .rpc import ChainRpc, RpcHealth

MAX_ACTIONS_PER_POLL = 1000


@dataclass(frozen=True, slots=True)
class ResumePoint:
    cursor_number: int
    cursor_hash: bytes | None
    inbox: InboxCursor = EMPTY_INBOX

    @classmethod
    def from_engine(cls, block_number: int, block_hash: bytes, inbox: InboxCursor, deployment_block: int) -> "ResumePoint":
        """From the engine's cursors; before the first chain block, from the block before the deployment."""
        if block_number == 0:
            return cls(max(0, deployment_block - 1), None, inbox)
        return cls(block_number, block_hash, inbox)


class HandoffFailed(DdxError):
    """The leader could not sequence a confirmed block (not leader any more, proposal timed out)."""


class ChainWatcher:
    def __init__(
        self,
        rpc: ChainRpc,
        config: FollowerConfig,
        *,
        resume: Callable[[], ResumePoint],
        handoff: Callable[[ConfirmedBlock], Awaitable[None]],
        backoff: Backoff = Backoff(initial=0.5, maximum=30.0),
    ) -> None:
        self.rpc = rpc
        self.config = config
        self._resume = resume
        self._handoff = handoff
        self.backoff = backoff
        self.health = RpcHealth()
        self.follower: Follower | None = None
        self.inbox = EMPTY_INBOX  # the inbox cursor after the last block handed over (or the engine's)
        self.inbox_checks = 0
        self.handed = 0
        self.handoff_failures = 0
        self.last_handoff_error: str | None = None

    def _follower(self) -> Follower:
        if self.follower is None:
            point = self._resume()
            self.follower = Follower(
                self.config,
                cursor_number=point.cursor_number,
                cursor_hash=point.cursor_hash,
                next_deposit_seq=point.inbox.deposits + 1,
                next_forced_seq=point.inbox.forced + 1,
            )
            self.inbox = point.inbox
        return self.follower

    def restart(self) -> None:
        """Start again from the engine's state (after a leadership change, or to clear an alarm by hand)."""
        self.follower = None

    async def poll_once(self) -> list[ConfirmedBlock]:
        """One round: read the head, follow it, hand over what got confirmed. Raises on RPC failure."""
        follower = self._follower()
        follower.observe_head(await self.rpc.block_number())
        handed: list[ConfirmedBlock] = []
        for _ in range(MAX_ACTIONS_PER_POLL):
            action = follower.next_action()
            if isinstance(action, (Idle, Halted)):
                break
            if isinstance(action, FetchHeaders):
                follower.on_headers(await self.rpc.headers(action.first, action.last))
            elif isinstance(action, FetchInbox):
                events = await self.rpc.inbox_events(action.first, action.last)
                blocks = follower.on_inbox(action.first, action.last, events)
                for index, block in enumerate(blocks):
                    if not await self._inbox_agrees(follower, block, last=index == len(blocks) - 1):
                        break
                    try:
                        await self._handoff(block)
                    except Exception as exc:
                        self.handoff_failures += 1
                        self.last_handoff_error = f"{type(exc).__name__}: {exc}"[:300]
                        self.restart()
                        raise HandoffFailed(self.last_handoff_error) from exc
                    self.handed += 1
                    handed.append(block)
                    self.inbox = self.inbox.after(block.leaves())
        return handed

    async def _inbox_agrees(self, follower: Follower, block: ConfirmedBlock, *, last: bool) -> bool:
        """Whether the inbox after `block`, as the logs read say, is the contract's own inbox head at that block.
        Checked where it can differ from the last check: blocks with entries, and the last block of a round."""
        if not (block.deposits or block.forced or last):
            return True
        expected = self.inbox.after(block.leaves())
        actual = await self.rpc.inbox_head(block.number)
        self.inbox_checks += 1
        if actual == expected:
            return True
        follower.inbox_mismatch(
            block.number,
            f"the logs read up to block {block.number} make the inbox {expected.deposits} deposits and "
            f"{expected.forced} forced requests (hash 0x{expected.acc.hex()[:16]}…); the contract has "
            f"{actual.deposits} and {actual.forced} (0x{actual.acc.hex()[:16]}…): an inbox log is missing",
        )
        return False

    def status(self) -> dict:
        base = self.follower.status() if self.follower is not None else {"state": "starting"}
        return base | {
            "confirmations": self.config.confirmations,
            "handedBlocks": self.handed,
            "inbox": self.inbox.to_json(),
            "inboxChecks": self.inbox_checks,
            "handoffFailures": self.handoff_failures,
            "lastHandoffError": self.last_handoff_error,
            "rpc": self.health.status(),
        }
