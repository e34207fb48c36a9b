"""A replica's continuous audit: `ddx audit`, kept running beside the replay.

Every epoch the replay freezes is held against the chain, through the replica's own RPC:
- each chain block the log sequenced must be the chain's (hash, deposits, forced requests: chain/verifier.py);
- the epoch's inbox cursor must be the contract's inbox head at the epoch's anchor block;
- once the contract records a checkpoint for the epoch, its root must be the replay's.
An epoch that fails any of these is *disputed*: an alarm is raised (status, metric, log) and the replica refuses
to serve proofs against it. The newest epoch recorded on-chain that passed everything is the one proofs default
to (`last_recorded_epoch`), so a claim or an escape built from a replica's proof is one the replay vouches for.

Sans-IO where it decides (`judge`); the `tick` shell asks the RPC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..chain.core.verification import Verdict
from ..chain.inbox_report import InboxReport, inbox_report
from ..chain.rpc import ChainRpc, RpcHealth
from ..chain.verifier import BlockVerifier
from ..protocol.inbox import InboxCursor

log = logging.getLogger("ddx.replica")

PENDING, AGREES, NOT_RECORDED, DISPUTED = "pending", "agrees", "not_recorded", "disputed"
KEEP_JUDGED = 1000  # judged epochs remembered (disputed ones are always kept: they stay refused)


@dataclass
class FrozenEpoch:
    epoch: int
    root: bytes
    l1_block_number: int
    l1_block_hash: bytes
    inbox: InboxCursor
    verdict: str = PENDING
    detail: str | None = None
    inbox_checked: bool = False


def judge(frozen: FrozenEpoch, recorded_root: bytes, latest_recorded: int) -> tuple[str, str | None]:
    """The verdict on one frozen epoch given what the contract holds for it."""
    if recorded_root == b"\x00" * 32:
        if latest_recorded > frozen.epoch:
            return NOT_RECORDED, f"epoch {frozen.epoch} was superseded on-chain by epoch {latest_recorded}"
        return PENDING, None
    if recorded_root != frozen.root:
        return DISPUTED, (
            f"the contract recorded root 0x{recorded_root.hex()} for epoch {frozen.epoch}; the replay of the request "
            f"log froze 0x{frozen.root.hex()}"
        )
    return AGREES, None


class ReplicaAudit:
    """Fed by the apply loop through `ChainHooks` (it is the hooks' checkpointer stand-in: `epoch_frozen`), and
    ticked by the replica. Also the node's CheckpointSource (status, last recorded epoch)."""

    def __init__(self, rpc: ChainRpc, verifier: BlockVerifier, engine=None) -> None:
        self.rpc = rpc
        self.verifier = verifier
        self.engine = engine  # () -> Engine, for the inbox report
        self.epochs: dict[int, FrozenEpoch] = {}
        self.health = RpcHealth()
        self.latest_recorded = 0
        self.audited = 0  # epochs judged agreeing with the chain

    # ---- from the apply loop -------------------------------------------------------------------------------

    def epoch_frozen(self, epoch: int, state_root: bytes, l1_block_number: int, l1_block_hash: bytes, inbox: InboxCursor):
        self.epochs[epoch] = FrozenEpoch(epoch, state_root, l1_block_number, l1_block_hash, inbox)

    # ---- queries -------------------------------------------------------------------------------------------

    def disputed(self) -> list[FrozenEpoch]:
        return [f for f in self.epochs.values() if f.verdict == DISPUTED]

    def is_disputed(self, epoch: int) -> bool:
        frozen = self.epochs.get(epoch)
        return frozen is not None and frozen.verdict == DISPUTED

    async def inbox(self, trader: bytes | None = None) -> InboxReport:
        engine = self.engine()
        return await inbox_report(self.rpc, engine.inbox_cursor(), engine.block_number, trader)

    def last_recorded_epoch(self) -> int | None:
        agreed = [e for e, f in self.epochs.items() if f.verdict == AGREES]
        return max(agreed) if agreed else None

    def status(self) -> dict:
        disputed = self.disputed()
        return {
            "state": "alarm" if disputed else "agrees",
            "lastRecordedEpoch": self.last_recorded_epoch(),
            "latestRecordedOnChain": self.latest_recorded,
            "auditedEpochs": self.audited,
            "pendingEpochs": sorted(e for e, f in self.epochs.items() if f.verdict == PENDING),
            "disputed": [{"epoch": f.epoch, "reason": f.detail} for f in disputed],
            "verifier": self.verifier.status(),
            "rpc": self.health.status(),
        }

    # ---- the loop ------------------------------------------------------------------------------------------

    async def tick(self) -> None:
        try:
            self.latest_recorded = await self.rpc.latest_epoch()
            for frozen in sorted(self.epochs.values(), key=lambda f: f.epoch):
                if frozen.verdict != PENDING:
                    continue
                await self._check(frozen)
            self._forget_old()
            self.health.succeeded()
        except Exception as exc:
            self.health.failed(exc)
            log.warning("replica audit: %s", self.health.last_error)

    async def _check(self, frozen: FrozenEpoch) -> None:
        if frozen.l1_block_number:
            blocks = await self.verifier.check_through(frozen.l1_block_number, frozen.l1_block_hash)
            if blocks is not None and blocks.verdict is Verdict.MISMATCH:
                self._dispute(frozen, blocks.reason)
                return
            if blocks is not None:
                return  # not confirmed on this RPC yet
            if not frozen.inbox_checked:
                contract = await self.rpc.inbox_head(frozen.l1_block_number)
                if contract != frozen.inbox:
                    self._dispute(frozen, (
                        f"epoch {frozen.epoch} took {frozen.inbox.deposits} deposits and {frozen.inbox.forced} forced "
                        f"requests, the contract had {contract.deposits} and {contract.forced} at block "
                        f"{frozen.l1_block_number} (or another inbox hash)"
                    ))
                    return
                frozen.inbox_checked = True
        verdict, detail = judge(frozen, await self.rpc.checkpoint_root(frozen.epoch), self.latest_recorded)
        if verdict == DISPUTED:
            self._dispute(frozen, detail)
        elif verdict != PENDING:
            frozen.verdict, frozen.detail = verdict, detail
            self.audited += verdict == AGREES

    def _forget_old(self) -> None:
        """Keep the newest KEEP_JUDGED judged epochs (and every pending or disputed one): memory stays bounded."""
        judged = sorted(e for e, f in self.epochs.items() if f.verdict in (AGREES, NOT_RECORDED))
        for epoch in judged[:-KEEP_JUDGED]:
            del self.epochs[epoch]

    def _dispute(self, frozen: FrozenEpoch, reason: str) -> None:
        frozen.verdict, frozen.detail = DISPUTED, reason
        log.error("REPLICA ALARM: epoch %d disagrees with the chain: %s", frozen.epoch, reason)
