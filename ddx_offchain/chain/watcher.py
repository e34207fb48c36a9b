"""The chain watcher: runs the pure `Follower` against an RPC and hands confirmed blocks to the leader.

`poll_once()` is one round; the leader's loop (operator_chain.py) calls it while this node leads, and backs off
with `backoff` after RPC failures, which `health` counts.

The leader's node gives it two callables: `resume()` (where sequencing stands: the engine's last sequenced block,
its hash and the next deposit seq) and `handoff(block)` (propose the chain-block command; raises if it could not).
A failed handoff restarts the follower from `resume()`, so a block is handed over again rather than lost; the
engine refuses a block it already has (not newer), so a repeat is harmless. RPC failures are retried with backoff
and reported in `status()`; an alarm (deposit gap, deep reorg) stops ingestion until an operator restarts it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import DdxError
from .core.blocks import ConfirmedBlock
from .core.follower import FetchDeposits, FetchHeaders, Follower, FollowerConfig, Halted, Idle
from .core.relay_policy import Backoff
from .rpc import ChainRpc, RpcHealth

MAX_ACTIONS_PER_POLL = 1000


@dataclass(frozen=True, slots=True)
class ResumePoint:
    cursor_number: int
    cursor_hash: bytes | None
    next_deposit_seq: int

    @classmethod
    def from_engine(cls, block_number: int, block_hash: bytes, deposit_seq: int, deployment_block: int) -> "ResumePoint":
        """From the engine's cursors; before the first chain block, from the block before the deployment."""
        if block_number == 0:
            return cls(max(0, deployment_block - 1), None, deposit_seq + 1)
        return cls(block_number, block_hash, deposit_seq + 1)


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
                next_deposit_seq=point.next_deposit_seq,
            )
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
            elif isinstance(action, FetchDeposits):
                events = await self.rpc.deposits(action.first, action.last)
                for block in follower.on_deposits(action.first, action.last, events):
                    try:
                        await self._handoff(block)
                    except Exception as exc:
                        self.handoff_failures += 1
                        self.last_handoff_error = f"{type(exc).__name__}: {exc}"[:300]
                        self.restart()
                        raise HandoffFailed(self.last_handoff_error) from exc
                    self.handed += 1
                    handed.append(block)
        return handed

    def status(self) -> dict:
        base = self.follower.status() if self.follower is not None else {"state": "starting"}
        return base | {
            "confirmations": self.config.confirmations,
            "handedBlocks": self.handed,
            "handoffFailures": self.handoff_failures,
            "lastHandoffError": self.last_handoff_error,
            "rpc": self.health.status(),
        }
