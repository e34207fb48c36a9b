"""The block verifier shell: checks sequenced chain blocks against this operator's own RPC (verification.py).

The node calls `record()` for every chain-block command the engine accepted, in log order; the checkpointer calls
`check_through(anchor)` before it signs a checkpoint and signs only when it returns None (every block confirmed),
and `forget_through(anchor)` once that checkpoint is final.

With a `ledger_path` the ledger of blocks not yet covered by a final checkpoint survives restarts: it is rewritten
(atomically, fsync'd) at every change, before the Raft snapshot that covers the entry can be written, so a node
restarted from its own snapshot still checks every block sequenced since the last final checkpoint. Entries the
node replays after that snapshot are recognised and not recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from ..errors import DdxError
from ..raft.logstore.fileio import atomic_write
from .core.blocks import SequencedBlock
from .core.verification import SequencedBlocks, Verdict, Verification, verify_block
from .rpc import ChainRpc, RpcHealth

log = logging.getLogger("ddx.chain.verifier")


LEDGER_FORMAT = 1


class BlockVerifier:
    def __init__(self, rpc: ChainRpc, *, confirmations: int, ledger_path: Path | None = None) -> None:
        self.rpc = rpc
        self.confirmations = confirmations
        self.ledger_path = ledger_path
        if ledger_path is not None:
            ledger_path.parent.mkdir(parents=True, exist_ok=True)
        self.blocks = load_ledger(ledger_path) if ledger_path is not None else SequencedBlocks()
        self.health = RpcHealth()
        self.checked = 0
        self._gap: tuple[int, int, Callable[[int, int], list[SequencedBlock] | None]] | None = None

    def record(self, block: SequencedBlock) -> None:
        if self.blocks.record(block):
            self._persist()

    def snapshot_installed(self, engine_block: int, below_request: int,
                           source: Callable[[int, int], list[SequencedBlock] | None]) -> None:
        """The state jumped to a snapshot whose engine has sequenced L1 blocks up to `engine_block`. If the ledger
        does not reach it (a snapshot installed from the leader skips entries this node never applied), the blocks
        in between are read back with `source(below_request, after_block)` — from history, None while history is not
        whole below the snapshot yet — before anything is signed."""
        known = max(self.blocks.last_number() or 0, self.blocks.forgotten_through)
        if engine_block > known:
            self._gap = (below_request, known, source)

    def _fill_gap(self) -> Verification | None:
        below, after, source = self._gap
        blocks = source(below, after)
        if blocks is None:
            return Verification(Verdict.PENDING, after, f"waiting for history below request {below} (backfill) to "
                                "re-verify the chain blocks a snapshot skipped")
        self.blocks.insert_earlier(blocks)  # the source gives only blocks after `after`
        self._gap = None
        self._persist()
        return None

    def forget_through(self, number: int) -> None:
        before = (len(self.blocks), self.blocks.forgotten_through)
        self.blocks.forget_through(number)
        if (len(self.blocks), self.blocks.forgotten_through) != before:
            self._persist()

    def _persist(self) -> None:
        if self.ledger_path is None:
            return
        doc = [LEDGER_FORMAT, self.blocks.forgotten_through,
               [[b.number, b.hash, [list(d) for d in b.deposits], [list(f) for f in b.forced]] for b in self.blocks.blocks()]]
        atomic_write(self.ledger_path, [msgspec.msgpack.encode(doc)])

    async def check_through(self, number: int, anchor_hash: bytes | None = None) -> Verification | None:
        """None when every block sequenced up to `number` (and the anchor itself) matches this operator's chain;
        else the first mismatch, or the first block it cannot confirm yet. RPC errors propagate (the caller
        retries) and are counted in `health`."""
        if self._gap is not None:
            waiting = self._fill_gap()
            if waiting is not None:
                return waiting
        try:
            head = await self.rpc.block_number()
            for block in self.blocks.unchecked_through(number):
                headers = await self.rpc.headers(block.number, block.number)
                events = await self.rpc.inbox_events(block.number, block.number) if head >= block.number else []
                result = verify_block(
                    block,
                    local_head=head,
                    confirmations=self.confirmations,
                    canonical=headers[0] if headers else None,
                    events=events,
                )
                self.blocks.set_result(result)
                self.checked += 1
                if result.verdict is Verdict.MISMATCH:
                    log.error("sequenced chain block contradicts this operator's RPC: %s", result.reason)
                    return result
            verdict = self.blocks.verdict_through(number)
            if verdict is None and anchor_hash is not None and number > 0:
                verdict = await self._check_anchor(number, anchor_hash, head)
            self.health.succeeded()
            return verdict
        except Exception as exc:
            self.health.failed(exc)
            raise

    async def _check_anchor(self, number: int, anchor_hash: bytes, head: int) -> Verification | None:
        """The checkpoint's anchor must be canonical and confirmed here even if this node did not see it
        sequenced (it restarted from a snapshot taken after it)."""
        if head < number + self.confirmations:
            return Verification(Verdict.PENDING, number, f"anchor block {number} is not yet {self.confirmations} deep here")
        headers = await self.rpc.headers(number, number)
        if not headers:
            return Verification(Verdict.PENDING, number, f"no header for anchor block {number}")
        if headers[0].hash != anchor_hash:
            return Verification(
                Verdict.MISMATCH,
                number,
                f"anchor block {number} is 0x{anchor_hash.hex()} in the checkpoint, 0x{headers[0].hash.hex()} here",
            )
        return None

    def status(self) -> dict:
        mismatches = self.blocks.mismatches()
        return {
            "trackedBlocks": len(self.blocks),
            "checked": self.checked,
            "mismatches": [{"block": m.block_number, "reason": m.reason} for m in mismatches],
            "rpc": self.health.status(),
        }


class LedgerError(DdxError):
    """The verifier's ledger file is unreadable: the node refuses to start rather than sign unchecked blocks."""


def load_ledger(path: Path) -> SequencedBlocks:
    """The persisted ledger (an empty one when the file does not exist yet)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return SequencedBlocks()
    except OSError as exc:
        raise LedgerError(f"cannot read the verifier ledger {path}: {exc.strerror}") from None
    try:
        version, forgotten, rows = msgspec.msgpack.decode(raw)
        if version != LEDGER_FORMAT:
            raise ValueError(f"format {version}")
        blocks = [
            SequencedBlock(number, bytes(h), tuple(tuple(d) for d in deposits), tuple(tuple(f) for f in forced))
            for number, h, deposits, forced in rows
        ]
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise LedgerError(f"the verifier ledger {path} is corrupt ({exc}): move it away to start afresh") from None
    return SequencedBlocks(blocks, forgotten_through=int(forgotten))
