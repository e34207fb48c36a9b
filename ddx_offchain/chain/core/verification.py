"""Independent verification of sequenced chain blocks: each operator checks them against its own RPC.

Pure: the comparison and the per-block bookkeeping; the shell (verifier.py) fetches the header and the logs.

A leader could sequence a chain-block command crediting a deposit that never happened. Every operator, before it
signs a checkpoint, checks each chain block sequenced up to the checkpoint's anchor against its own view of the
chain: the block must be confirmed (by this operator's confirmation depth), its hash must be the canonical one,
and the deposits and forced requests the command carried must be exactly the block's Deposit and ForcedRequest
events (same fields, same order). A mismatch is permanent (the command is in the log forever), so the operator refuses
to sign every checkpoint that includes it and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .blocks import BlockHeader, DepositEvent, ForcedEvent, InboxEvent, SequencedBlock


class Verdict(str, Enum):
    CONFIRMED = "confirmed"  # matches this operator's chain, past its confirmation depth
    PENDING = "pending"  # cannot tell yet (not confirmed here yet, RPC behind or failing)
    MISMATCH = "mismatch"  # contradicts this operator's chain: never sign over it


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    block_number: int
    reason: str


def verify_block(
    sequenced: SequencedBlock,
    *,
    local_head: int | None,
    confirmations: int,
    canonical: BlockHeader | None,
    events: list[InboxEvent],
) -> Verification:
    """Compare one sequenced block with what this operator's RPC says (`events`: the inbox logs of that height)."""
    n = sequenced.number
    if local_head is None or local_head < n + confirmations:
        return Verification(
            Verdict.PENDING, n, f"block {n} is not yet {confirmations} blocks deep here (head {local_head})"
        )
    if canonical is None or canonical.number != n:
        return Verification(Verdict.PENDING, n, f"no header for block {n} from this operator's RPC")
    if canonical.hash != sequenced.hash:
        return Verification(
            Verdict.MISMATCH,
            n,
            f"block {n} was sequenced with hash 0x{sequenced.hash.hex()}, this operator's chain has 0x{canonical.hash.hex()}",
        )
    in_block = sorted((e for e in events if e.block_number == n), key=lambda e: e.log_index)
    if any(e.block_hash != canonical.hash for e in in_block):
        return Verification(Verdict.PENDING, n, f"inbox logs of block {n} came from another fork: asking again")
    on_chain = [e for e in in_block if type(e) is DepositEvent]
    forced = tuple(e.fields_tuple() for e in in_block if type(e) is ForcedEvent)
    if forced != tuple(sequenced.forced):
        return Verification(
            Verdict.MISMATCH, n,
            f"block {n}: forced requests {[f[0] for f in sequenced.forced]} were sequenced, the chain has "
            f"{[f[0] for f in forced]} (or other contents)",
        )
    chain_fields = tuple(e.fields() for e in on_chain)
    if chain_fields != tuple(sequenced.deposits):
        sequenced_seqs = [d[0] for d in sequenced.deposits]
        chain_seqs = [d[0] for d in chain_fields]
        if sequenced_seqs != chain_seqs:
            detail = f"deposit seqs {sequenced_seqs} were sequenced, the chain has {chain_seqs}"
        else:
            bad = next(s for s, c in zip(sequenced.deposits, chain_fields) if s != c)
            detail = f"deposit {bad[0]} was sequenced with other contents than the chain's event"
        return Verification(Verdict.MISMATCH, n, f"block {n}: {detail}")
    return Verification(
        Verdict.CONFIRMED, n, f"block {n}, its {len(on_chain)} deposits and {len(forced)} forced requests match this operator's chain"
    )


class SequencedBlocks:
    """The chain blocks the log has sequenced, in order, and what this operator found when it checked them."""

    def __init__(self, blocks: list[SequencedBlock] | None = None, forgotten_through: int = 0) -> None:
        self._blocks: list[SequencedBlock] = list(blocks or [])
        self._results: dict[int, Verification] = {}
        self.forgotten_through = forgotten_through  # every block up to here was confirmed and dropped

    def record(self, block: SequencedBlock) -> bool:
        """Called as the node applies an accepted chain-block command (numbers strictly increase). A block already
        in the ledger (the node replaying its log after a restart that kept the ledger) is not added twice; False
        then."""
        if block.number <= self.forgotten_through:
            return False  # confirmed and final before a restart replayed it: nothing left to check
        if self._blocks and block.number <= self._blocks[-1].number:
            if any(b == block for b in self._blocks):
                return False
            raise ValueError(f"sequenced block {block.number} is not after {self._blocks[-1].number}")
        self._blocks.append(block)
        return True

    def insert_earlier(self, blocks: list[SequencedBlock]) -> None:
        """Blocks sequenced before the ones recorded since (read back after a snapshot skipped them), in order;
        those already present are kept once."""
        present = {b.number for b in self._blocks}
        merged = sorted([b for b in blocks if b.number not in present] + self._blocks, key=lambda b: b.number)
        self._blocks = merged

    def last_number(self) -> int | None:
        return self._blocks[-1].number if self._blocks else None

    def blocks(self) -> list[SequencedBlock]:
        return list(self._blocks)

    def unchecked_through(self, number: int) -> list[SequencedBlock]:
        """Blocks up to `number` not yet confirmed (pending or never checked); mismatches stay final."""
        out = []
        for block in self._blocks:
            if block.number > number:
                break
            result = self._results.get(block.number)
            if result is None or result.verdict is Verdict.PENDING:
                out.append(block)
        return out

    def set_result(self, result: Verification) -> None:
        previous = self._results.get(result.block_number)
        if previous is not None and previous.verdict is Verdict.MISMATCH:
            return  # a contradiction, once seen, is never forgotten
        self._results[result.block_number] = result

    def verdict_through(self, number: int) -> Verification | None:
        """The combined verdict for every block sequenced up to `number`: the first mismatch, else the first
        pending (or unchecked) block, else None when every one is confirmed."""
        pending = None
        for block in self._blocks:
            if block.number > number:
                break
            result = self._results.get(block.number)
            if result is not None and result.verdict is Verdict.MISMATCH:
                return result
            if pending is None and (result is None or result.verdict is Verdict.PENDING):
                pending = result or Verification(Verdict.PENDING, block.number, f"block {block.number} not checked yet")
        return pending

    def forget_through(self, number: int) -> None:
        """Drop confirmed blocks up to `number` once a checkpoint covering them is final (mismatches stay)."""
        keep = []
        for block in self._blocks:
            result = self._results.get(block.number)
            if block.number <= number and result is not None and result.verdict is Verdict.CONFIRMED:
                del self._results[block.number]
                self.forgotten_through = max(self.forgotten_through, block.number)
                continue
            keep.append(block)
        self._blocks = keep

    def mismatches(self) -> list[Verification]:
        return [r for r in self._results.values() if r.verdict is Verdict.MISMATCH]

    def __len__(self) -> int:
        return len(self._blocks)
