"""Forced requests from the L1 inbox: applied as the same signed request would be, rejected on their merits but
always taken (counted and folded into the inbox hash), in the inbox's order among the block's deposits; a block
whose forced requests do not continue the forced seq is refused whole."""

from __future__ import annotations

from engine_helpers import ETHP, ONE, USDC, Driver, items_except_cursors, of_type, reason, trader, usd

from ddx_offchain.engine import Engine
from ddx_offchain.engine.commands import (
    BUY,
    MARKET,
    SELL,
    ChainBlock,
    Deposit,
    ForcedRequest,
    forced_request_id,
)
from ddx_offchain.engine.commands import (
    MAIN_STRATEGY as MAIN,
)
from ddx_offchain.engine.reasons import Reject
from ddx_offchain.engine.updates import ForcedRequestApplied, OrderUpdate, Rejected, WithdrawalUpdate
from ddx_offchain.protocol import inbox as ib
from ddx_offchain.protocol import requests as pr

A, B = trader(1), trader(2)


def _funded() -> Driver:
    d = Driver()
    d.deposit(A, usd(10_000))
    d.deposit(B, usd(10_000))
    d.price(usd(2000))
    return d


def _outcome(updates) -> ForcedRequestApplied:
    (applied,) = of_type(updates, ForcedRequestApplied)
    return applied


def test_a_forced_withdrawal_is_applied_like_the_signed_request_and_moves_the_inbox_cursor():
    d = _funded()
    before = d.engine.inbox_cursor()
    updates = d.force(pr.WithdrawIntent(A, MAIN, USDC, usd(400), 0, 0))
    applied = _outcome(updates)
    assert (applied.seq, applied.trader, applied.reason, applied.request_id) == (1, A, 0, forced_request_id(1))
    (withdrawal,) = of_type(updates, WithdrawalUpdate)
    assert (withdrawal.trader, withdrawal.amount) == (A, usd(400))
    fields = pr.forced_fields(pr.WithdrawIntent(A, MAIN, USDC, usd(400), 0, 0))[1]
    expected = before.after([ib.forced_leaf(1, A, pr.WithdrawIntent.TYPE_ID, fields)])
    assert d.engine.inbox_cursor() == expected
    assert (expected.deposits, expected.forced) == (2, 1)


def test_the_inbox_hash_of_deposits_is_the_protocol_fold():
    d = Driver()
    d.deposit(A, 5)
    d.deposit(B, 7)
    leaves = [ib.deposit_leaf(1, A, MAIN, USDC, 5), ib.deposit_leaf(2, B, MAIN, USDC, 7)]
    assert d.engine.inbox_cursor() == ib.EMPTY_INBOX.after(leaves)


def test_rejected_on_its_merits_still_counts_as_processed():
    d = _funded()
    updates = d.force(pr.WithdrawIntent(A, MAIN, USDC, usd(1_000_000), 0, 0))  # more than A has
    applied = _outcome(updates)
    assert applied.reason == Reject.INSUFFICIENT_FREE_COLLATERAL
    assert reason(updates) is None  # the block itself was accepted
    assert d.engine.forced_seq == 1
    unknown_market = pr.PlaceOrder(A, MAIN, b"NOPE".ljust(32, b"\0"), BUY, MARKET, 0, ONE, False, 0, 0)
    assert _outcome(d.force(unknown_market)).reason == Reject.UNKNOWN_MARKET
    unknown_token = pr.WithdrawIntent(A, MAIN, b"\x99" * 20, 1, 0, 0)
    assert _outcome(d.force(unknown_token)).reason == Reject.UNKNOWN_TOKEN
    assert d.engine.forced_seq == 3


def _raw_forced(d: Driver, seq: int, request_type: int, fields: bytes, deposits_before: int | None = None):
    return ForcedRequest.of(seq, d.engine.deposit_seq if deposits_before is None else deposits_before, A, request_type, fields)


def _block(d: Driver, deposits=(), forced=()) -> list:
    d.block += 1
    return d.apply(ChainBlock(d.rid(), d.block, d.block.to_bytes(32, "big"), tuple(deposits), tuple(forced)))


def test_malformed_fields_are_rejected_but_taken():
    d = _funded()
    # a PlaceOrder whose reduceOnly word is 2: not a bool
    fields = MAIN + ETHP + (0).to_bytes(32, "big") * 4 + (2).to_bytes(32, "big") + bytes(32) * 2
    updates = _block(d, forced=[_raw_forced(d, 1, pr.PlaceOrder.TYPE_ID, fields)])
    applied = _outcome(updates)
    assert applied.reason == Reject.MALFORMED and "reduceOnly" in applied.detail
    rejected = [u for u in updates if isinstance(u, Rejected)]
    assert rejected and rejected[0].request_id == forced_request_id(1)
    # an unknown request type, and a wrong word count: rejected, taken, folded
    cursor = d.engine.inbox_cursor()
    updates = _block(d, forced=[_raw_forced(d, 2, 77, MAIN), _raw_forced(d, 3, pr.CancelAll.TYPE_ID, MAIN)])
    assert [u.reason for u in of_type(updates, ForcedRequestApplied)] == [Reject.MALFORMED, Reject.MALFORMED]
    assert d.engine.inbox_cursor() == cursor.after([ib.forced_leaf(2, A, 77, MAIN), ib.forced_leaf(3, A, 3, MAIN)])


def test_a_block_whose_forced_requests_skip_or_repeat_a_seq_is_refused_whole():
    d = _funded()
    items, cursor = items_except_cursors(d.engine), d.engine.inbox_cursor()
    fields = pr.forced_fields(pr.CancelAll(A, MAIN, ETHP, 0, 0))[1]
    for seq in (0, 2):
        updates = _block(d, deposits=[Deposit(3, A, MAIN, USDC, 1)], forced=[_raw_forced(d, seq, 3, fields)])
        assert reason(updates) == Reject.FORCED_SEQUENCE
    # placed after a deposit this block does not carry
    updates = _block(d, forced=[_raw_forced(d, 1, 3, fields, deposits_before=d.engine.deposit_seq + 1)])
    assert reason(updates) == Reject.MALFORMED
    assert (items_except_cursors(d.engine), d.engine.inbox_cursor()) == (items, cursor)


def test_forced_requests_take_their_place_among_the_blocks_deposits():
    """Placed before a deposit, a withdrawal of money that only that deposit brings is refused; placed after it,
    the same withdrawal is paid. The contract's order is the engine's order."""
    for placed_after, expected in ((0, Reject.INSUFFICIENT_FREE_COLLATERAL), (1, 0)):
        d = Driver()
        d.deposit(A, usd(10))
        fields = pr.forced_fields(pr.WithdrawIntent(A, MAIN, USDC, usd(50), 0, 0))[1]
        forced = _raw_forced(d, 1, pr.WithdrawIntent.TYPE_ID, fields, deposits_before=1 + placed_after)
        updates = _block(d, deposits=[Deposit(2, A, MAIN, USDC, usd(100))], forced=[forced])
        applied = _outcome(updates)
        assert applied.reason == expected
        leaves = [ib.deposit_leaf(2, A, MAIN, USDC, usd(100)), ib.forced_leaf(1, A, 5, fields)]
        if not placed_after:
            leaves.reverse()
        assert d.engine.inbox_cursor() == ib.EMPTY_INBOX.after([ib.deposit_leaf(1, A, MAIN, USDC, usd(10))] + leaves)


def test_forced_cancel_all_and_a_reduce_only_close():
    d = _funded()
    d.order(B, SELL, usd(2000), 2 * ONE)
    d.order(A, BUY, 0, ONE, MARKET)  # A long 1
    d.order(A, BUY, usd(1500), ONE)  # a resting bid of A's
    updates = d.force(pr.CancelAll(A, MAIN, ETHP, 0, 0))
    assert _outcome(updates).reason == 0
    assert [u.status for u in of_type(updates, OrderUpdate)] == [2]  # cancelled
    close = pr.PlaceOrder(A, MAIN, ETHP, SELL, MARKET, 0, ONE, True, 0, 0)
    d.order(B, BUY, usd(1990), ONE)
    updates = d.force(close)
    assert _outcome(updates).reason == 0
    position = d.engine.accounts[A + MAIN + USDC].positions.get(ETHP)
    assert position is None or position.size == 0


def test_a_snapshot_keeps_the_inbox_cursor():
    d = _funded()
    d.force(pr.CancelAll(A, MAIN, ETHP, 0, 0))
    d.epoch()
    restored = Engine.restore(d.engine.snapshot())
    assert restored.inbox_cursor() == d.engine.inbox_cursor()
    assert restored.state_root() == d.engine.state_root()
