"""Independent verification of sequenced chain blocks (pure): what makes an operator refuse to sign."""

from __future__ import annotations

import pytest

from ddx_offchain.chain.core.blocks import BlockHeader, DepositEvent, SequencedBlock
from ddx_offchain.chain.core.verification import SequencedBlocks, Verdict, Verification, verify_block

H5 = b"\x05" * 32
TRADER = b"\x11" * 20
TOKEN = b"\x22" * 20
MAIN = b"main".ljust(32, b"\0")
HEADER = BlockHeader(5, H5, b"\x04" * 32)


def event(seq: int, amount: int, log_index: int = 0, block_hash: bytes = H5) -> DepositEvent:
    return DepositEvent(seq, TRADER, MAIN, TOKEN, amount, 5, block_hash, log_index)


def sequenced(*deposits: tuple, block_hash: bytes = H5) -> SequencedBlock:
    return SequencedBlock(5, block_hash, tuple(deposits))


def check(block: SequencedBlock, events: list, head: int = 10, confirmations: int = 2, header=HEADER) -> Verification:
    return verify_block(block, local_head=head, confirmations=confirmations, canonical=header, events=events)


def test_matching_block_is_confirmed():
    result = check(sequenced((1, TRADER, MAIN, TOKEN, 100)), [event(1, 100)])
    assert result.verdict is Verdict.CONFIRMED


def test_not_deep_enough_here_is_pending_not_a_refusal():
    assert check(sequenced(), [], head=6, confirmations=2).verdict is Verdict.PENDING
    assert check(sequenced(), [], head=None).verdict is Verdict.PENDING
    assert check(sequenced(), [], header=None).verdict is Verdict.PENDING


def test_another_block_hash_is_a_mismatch():
    result = check(sequenced(block_hash=b"\x66" * 32), [])
    assert result.verdict is Verdict.MISMATCH and "hash" in result.reason


def test_a_fake_deposit_is_a_mismatch():
    """The leader credits a deposit the block never logged."""
    result = check(sequenced((1, TRADER, MAIN, TOKEN, 10**12)), [])
    assert result.verdict is Verdict.MISMATCH
    assert "[1]" in result.reason and "[]" in result.reason


def test_an_inflated_or_redirected_deposit_is_a_mismatch():
    assert check(sequenced((1, TRADER, MAIN, TOKEN, 101)), [event(1, 100)]).verdict is Verdict.MISMATCH
    other = b"\x33" * 20
    assert check(sequenced((1, other, MAIN, TOKEN, 100)), [event(1, 100)]).verdict is Verdict.MISMATCH


def test_an_omitted_deposit_is_a_mismatch():
    assert check(sequenced((1, TRADER, MAIN, TOKEN, 100)), [event(1, 100), event(2, 5, 1)]).verdict is Verdict.MISMATCH


def test_logs_from_another_fork_are_pending():
    assert check(sequenced(), [event(1, 1, block_hash=b"\x99" * 32)]).verdict is Verdict.PENDING


def test_ledger_combines_blocks_and_never_forgets_a_mismatch():
    ledger = SequencedBlocks()
    ledger.record(SequencedBlock(5, H5, ()))
    ledger.record(SequencedBlock(7, b"\x07" * 32, ()))
    assert ledger.record(SequencedBlock(7, b"\x07" * 32, ())) is False  # a replay of the same block: ignored
    with pytest.raises(ValueError):
        ledger.record(SequencedBlock(6, b"\x06" * 32, ()))  # another block, not after the last: a broken log
    assert ledger.verdict_through(7).verdict is Verdict.PENDING  # unchecked
    ledger.set_result(Verification(Verdict.CONFIRMED, 5, "ok"))
    assert [b.number for b in ledger.unchecked_through(7)] == [7]
    assert ledger.verdict_through(5) is None
    ledger.set_result(Verification(Verdict.MISMATCH, 7, "fake"))
    ledger.set_result(Verification(Verdict.CONFIRMED, 7, "later the RPC agrees"))
    assert ledger.verdict_through(7).verdict is Verdict.MISMATCH
    assert ledger.unchecked_through(7) == []
    ledger.forget_through(7)
    assert len(ledger) == 1 and ledger.mismatches()[0].block_number == 7
