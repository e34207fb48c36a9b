"""The block verifier shell: checks sequenced chain blocks against this operator's own RPC (verification.py).

The node calls `record()` for every chain-block command the engine accepted, in log order; the checkpointer calls
`check_through(anchor)` before it signs a checkpoint and signs only when it returns None (every block confirmed).
"""

from __future__ import annotations

import logging

from .core.blocks import SequencedBlock
from .core.verification import SequencedBlocks, Verdict, Verification, verify_block
from .rpc import ChainRpc, RpcHealth

log = logging.getLogger("ddx.chain.verifier")


class BlockVerifier:
    def __init__(self, rpc: ChainRpc, *, confirmations: int) -> None:
        self.rpc = rpc
        self.confirmations = confirmations
        self.blocks = SequencedBlocks()
        self.health = RpcHealth()
        self.checked = 0

    def record(self, block: SequencedBlock) -> None:
        self.blocks.record(block)

    async def check_through(self, number: int, anchor_hash: bytes | None = None) -> Verification | None:
        """None when every block sequenced up to `number` (and the anchor itself) matches this operator's chain;
        else the first mismatch, or the first block it cannot confirm yet. RPC errors propagate (the caller
        retries) and are counted in `health`."""
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
