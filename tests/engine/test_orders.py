"""Order entry and matching: every order type, price-time priority, self-trade prevention, fees, limits, cancel,
cancel-all and modify. Rejections change nothing (the state root is unchanged)."""

import pytest
from engine_helpers import (
    ETHP,
    Driver,
    accepted,
    conservation,
    items_except_cursors,
    market_params,
    of_type,
    reason,
    trader,
    usd,
)

from ddx_offchain.engine.commands import BUY, LIMIT, LIMIT_IOC, MARKET, POST_ONLY, SELL, name32
from ddx_offchain.engine.reasons import CancelReason, Reject
from ddx_offchain.engine.updates import CANCELLED, FILLED, OPEN, Fill, OrderUpdate, PositionUpdate

A, B, C = trader(1), trader(2), trader(3)
P = usd(2000)
TICK = 10_000


@pytest.fixture
def d():
    drv = Driver()
    for who in (A, B, C):
        drv.deposit(who, usd(100_000))
    drv.price(P)
    return drv


def order_id(updates):
    return updates[0].request_id


def test_gtc_rests_and_is_reported_open(d):
    ups = d.order(A, BUY, P - TICK, 10_000)
    assert accepted(ups)
    (ou,) = of_type(ups, OrderUpdate)
    assert (ou.status, ou.remaining, ou.price) == (OPEN, 10_000, P - TICK)
    assert d.engine.markets[ETHP].book.best_bid() == P - TICK


def test_fill_at_maker_price_with_fees_to_the_fee_account(d):
    d.order(A, SELL, P, 10_000)
    ups = d.order(B, BUY, P + 5 * TICK, 4_000)
    (fill,) = of_type(ups, Fill)
    notional = P * 4_000 // 10**6  # 8,000,000 = 8 USDC
    assert (fill.price, fill.size, fill.taker_side) == (P, 4_000, BUY)
    assert fill.maker_fee == -(-notional * 2 // 10_000) == 1_600
    assert fill.taker_fee == -(-notional * 5 // 10_000) == 4_000
    assert d.engine.ledgers[d.engine.default_token].fees == 5_600
    taker_update = [o for o in of_type(ups, OrderUpdate) if o.trader == B][0]
    assert taker_update.status == FILLED
    # the unfilled maker rest stays at the front of its level
    assert d.engine.markets[ETHP].book.levels[SELL][P][0][0].remaining == 6_000
    assert conservation(d.engine) == {d.engine.default_token: 0}


def test_fee_rounds_up_against_the_trader(d):
    d.order(A, SELL, usd(0.01) * 3 + P, 1_000)  # notional 2.00003 USDC → 2_000_030 base units
    ups = d.order(B, BUY, P + 3 * TICK, 1_000)
    (fill,) = of_type(ups, Fill)
    assert fill.maker_fee == 401  # 2_000_030 * 2 / 10^4 = 400.006 → 401
    assert fill.taker_fee == 1_001  # 1000.015 → 1001


def test_price_time_priority(d):
    first = order_id(d.order(A, SELL, P, 1_000))
    second = order_id(d.order(C, SELL, P, 1_000))
    better = order_id(d.order(C, SELL, P - TICK, 1_000))
    ups = d.order(B, BUY, P, 3_000)
    assert [f.maker_order for f in of_type(ups, Fill)] == [better, first, second]
    assert [f.price for f in of_type(ups, Fill)] == [P - TICK, P, P]


def test_ioc_cancels_its_unfilled_rest(d):
    d.order(A, SELL, P, 1_000)
    ups = d.order(B, BUY, P, 5_000, LIMIT_IOC)
    assert sum(f.size for f in of_type(ups, Fill)) == 1_000
    taker = [o for o in of_type(ups, OrderUpdate) if o.trader == B][-1]
    assert (taker.status, taker.reason) == (CANCELLED, CancelReason.IOC_REMAINDER)
    assert not d.engine.markets[ETHP].book.bid_prices


def test_post_only_rests_or_is_rejected(d):
    d.order(A, SELL, P, 1_000)
    assert accepted(d.order(B, BUY, P - TICK, 1_000, POST_ONLY))
    before = items_except_cursors(d.engine)
    ups = d.order(B, BUY, P, 1_000, POST_ONLY)
    assert reason(ups) == Reject.POST_ONLY_WOULD_CROSS and len(ups) == 1
    assert items_except_cursors(d.engine) == before


def test_market_order_takes_within_the_band_only(d):
    d.order(A, SELL, P, 1_000)
    d.order(A, SELL, P + P * 6 // 100 // TICK * TICK, 1_000)  # 6% away: outside the 5% band
    ups = d.order(B, BUY, 0, 2_000, MARKET)
    assert [f.price for f in of_type(ups, Fill)] == [P]
    assert reason(d.order(B, BUY, TICK, 1_000, MARKET)) == Reject.BAD_PRICE


def test_self_trade_prevention_cancels_the_incoming_remainder(d):
    d.order(C, SELL, P - TICK, 1_000)
    own = order_id(d.order(A, SELL, P, 1_000))
    d.order(C, SELL, P + TICK, 1_000)
    ups = d.order(A, BUY, P + TICK, 3_000)
    fills = of_type(ups, Fill)
    assert [f.price for f in fills] == [P - TICK]  # stopped at its own order
    taker = [o for o in of_type(ups, OrderUpdate) if o.order_id == order_id(ups)][-1]
    assert (taker.status, taker.reason) == (CANCELLED, CancelReason.SELF_TRADE)
    assert own in d.engine.orders  # the resting order is untouched
    # self-trade prevention is per trader, across strategies too
    d.deposit(A, usd(10_000), strategy=name32("alt"))
    ups = d.order(A, BUY, P, 1_000, LIMIT_IOC, strategy=name32("alt"))
    assert not of_type(ups, Fill)


def test_reduce_only_caps_and_refuses(d):
    d.order(A, SELL, P, 5_000)
    d.order(B, BUY, P, 5_000)  # B long 5_000
    assert reason(d.order(B, BUY, P, 1_000, LIMIT_IOC, reduce_only=True)) == Reject.REDUCE_ONLY_NOT_REDUCING
    assert reason(d.order(C, SELL, P, 1_000, LIMIT_IOC, reduce_only=True)) == Reject.REDUCE_ONLY_NOT_REDUCING
    d.order(C, BUY, P, 20_000)
    ups = d.order(B, SELL, P, 9_000, LIMIT_IOC, reduce_only=True)
    assert sum(f.size for f in of_type(ups, Fill)) == 5_000  # capped at the position
    assert d.engine.accounts[B + name32("main") + d.engine.default_token].positions[ETHP].size == 0


def test_cancel_and_its_rejections(d):
    oid = order_id(d.order(A, BUY, P - TICK, 1_000))
    assert reason(d.cancel(B, oid)) == Reject.UNKNOWN_ORDER  # not the owner
    assert reason(d.cancel(A, oid, strategy=name32("other"))) == Reject.UNKNOWN_ORDER
    assert reason(d.cancel(A, oid, market=name32("BTCP"))) == Reject.UNKNOWN_ORDER
    ups = d.cancel(A, oid)
    (ou,) = of_type(ups, OrderUpdate)
    assert (ou.status, ou.reason) == (CANCELLED, CancelReason.USER)
    assert reason(d.cancel(A, oid)) == Reject.UNKNOWN_ORDER
    assert not d.engine.markets[ETHP].book.bid_prices
    pos = d.engine.accounts[A + name32("main") + d.engine.default_token].positions[ETHP]
    assert pos.open_buy == 0


def test_cancel_all_in_time_order(d):
    ids = [order_id(d.order(A, side, P + (TICK if side else -TICK) * (i + 1), 1_000))
           for i, side in enumerate((BUY, SELL, BUY))]
    d.order(B, BUY, P - TICK, 1_000)
    ups = d.cancel_all(A)
    assert [o.order_id for o in of_type(ups, OrderUpdate)] == ids
    assert len(d.engine.orders) == 1
    assert reason(d.cancel_all(A, strategy=name32("nope"))) == Reject.UNKNOWN_STRATEGY
    assert reason(d.cancel_all(A, market=name32("NOPE"))) == Reject.UNKNOWN_MARKET


def test_modify_is_an_atomic_cancel_replace(d):
    old = order_id(d.order(A, BUY, P - 2 * TICK, 1_000))
    d.order(B, BUY, P - TICK, 1_000)
    ups = d.modify(A, old, P - TICK, 2_000)
    assert accepted(ups)
    new = order_id(ups)
    cancelled, opened = of_type(ups, OrderUpdate)
    assert (cancelled.order_id, cancelled.reason) == (old, CancelReason.MODIFIED)
    assert (opened.order_id, opened.status, opened.remaining) == (new, OPEN, 2_000)
    # the replacement lost time priority: B's order at the same price fills first
    ups = d.order(C, SELL, P - TICK, 1_000)
    assert of_type(ups, Fill)[0].maker_trader == B
    # a refused modify leaves the old order exactly as it was
    before = items_except_cursors(d.engine)
    assert reason(d.modify(A, new, P - TICK + 1, 2_000)) == Reject.BAD_PRICE
    assert reason(d.modify(A, new, P - TICK, 10**9)) == Reject.INSUFFICIENT_MARGIN
    assert items_except_cursors(d.engine) == before and new in d.engine.orders
    assert reason(d.modify(B, new, P, 1_000)) == Reject.UNKNOWN_ORDER


def test_modify_that_crosses_takes_liquidity(d):
    old = order_id(d.order(A, BUY, P - 2 * TICK, 1_000))
    d.order(B, SELL, P, 1_000)
    ups = d.modify(A, old, P, 1_000)
    assert of_type(ups, Fill)[0].size == 1_000


def test_open_order_and_notional_limits():
    d = Driver(max_open_orders=2, markets=(market_params(max_order_notional=usd(1_000)),))
    d.deposit(A, usd(100_000))
    d.price(P)
    assert reason(d.order(A, BUY, P, 600_000)) == Reject.NOTIONAL_TOO_LARGE  # 1,200 USDC
    assert accepted(d.order(A, BUY, P - TICK, 1_000))
    assert accepted(d.order(A, BUY, P - TICK, 1_000))
    assert reason(d.order(A, BUY, P - TICK, 1_000)) == Reject.TOO_MANY_OPEN_ORDERS
    assert accepted(d.order(A, BUY, P - TICK, 1_000, LIMIT_IOC))  # never rests: not limited


def test_tick_lot_and_market_checks(d):
    assert reason(d.order(A, BUY, P + 1, 1_000)) == Reject.BAD_PRICE
    assert reason(d.order(A, BUY, 0, 1_000)) == Reject.BAD_PRICE
    assert reason(d.order(A, BUY, P, 1_500)) == Reject.BAD_SIZE
    assert reason(d.order(A, BUY, P, 0)) == Reject.BAD_SIZE
    assert reason(d.order(A, BUY, P, 1_000, market=name32("NOPE"))) == Reject.UNKNOWN_MARKET
    assert reason(d.order(A, 2, P, 1_000)) == Reject.MALFORMED
    assert reason(d.order(A, BUY, P, 1_000, order_type=7)) == Reject.MALFORMED
    assert reason(d.order(trader(99), BUY, P, 1_000)) == Reject.UNKNOWN_STRATEGY


def test_no_price_and_inactive_market():
    from ddx_offchain.engine.commands import UpdateMarket

    d = Driver()
    d.deposit(A, usd(1_000))
    assert reason(d.order(A, BUY, P, 1_000)) == Reject.NO_PRICE
    d.price(P)
    assert accepted(d.apply(UpdateMarket(d.rid(), market_params(active=False))))
    assert reason(d.order(A, BUY, P, 1_000)) == Reject.MARKET_INACTIVE


def test_duplicate_order_id_is_refused(d):
    from ddx_offchain.engine.commands import PlaceOrder

    oid = order_id(d.order(A, BUY, P - TICK, 1_000))
    ups = d.apply(PlaceOrder(oid, B, name32("main"), ETHP, BUY, LIMIT, P - TICK, 1_000, False))
    assert reason(ups) == Reject.DUPLICATE_ORDER_ID


def test_initial_margin_checked_on_the_post_trade_state(d):
    # 100,000 USDC at 10% IM supports 1,000,000 USDC of notional = 500 contracts at 2,000
    assert reason(d.order(A, BUY, P, 501_000_000)) == Reject.INSUFFICIENT_MARGIN
    assert accepted(d.order(A, BUY, P - TICK, 400_000_000))
    # the resting order already uses margin: another one on the same side does not fit
    assert reason(d.order(A, BUY, P - TICK, 200_000_000)) == Reject.INSUFFICIENT_MARGIN
    # the opposite side does not add to the worst case
    assert accepted(d.order(A, SELL, P + TICK, 200_000_000))


def test_rejections_change_nothing(d):
    d.order(A, SELL, P, 1_000)
    root = d.engine.state_root()
    ordinal = d.engine.ordinal
    for ups in (d.order(B, BUY, P + 1, 1_000), d.order(B, BUY, P, 10**12), d.cancel(B, b"\x01" * 32)):
        assert len(ups) == 1 and reason(ups)
    assert d.engine.state_root() != root  # the ordinal counter (SYSTEM item) moved …
    assert d.engine.ordinal == ordinal + 3
    d.engine.ordinal = ordinal
    assert d.engine.state_root() == root  # … and nothing else


def test_wrongly_typed_fields_are_malformed_not_crashes(d):
    from ddx_offchain.engine.commands import CancelOrder, PlaceOrder

    assert reason(d.apply(PlaceOrder(d.rid(), "0xabc", name32("main"), ETHP, BUY, LIMIT, P, 1_000, False))) \
        == Reject.MALFORMED
    assert reason(d.apply(PlaceOrder(d.rid(), A, name32("main"), ETHP, BUY, LIMIT, "1", 1_000, False))) \
        == Reject.MALFORMED
    assert reason(d.apply(CancelOrder(d.rid(), A, name32("main"), ETHP, None))) == Reject.UNKNOWN_ORDER
    assert reason(d.apply("not a command")) == Reject.MALFORMED


def test_position_update_after_trade(d):
    d.order(A, SELL, P, 2_000)
    ups = d.order(B, BUY, P, 2_000)
    longs = [p for p in of_type(ups, PositionUpdate) if p.trader == B]
    assert (longs[-1].size, longs[-1].cost) == (2_000, P * 2_000 // 10**6)


def test_below_initial_margin_a_trader_can_still_reduce_risk():
    d = Driver()
    d.deposit(A, usd(250))
    d.deposit(B, usd(100_000))
    d.price(P)
    d.order(B, SELL, P, 1_000_000)
    d.order(A, BUY, P, 1_000_000)  # long 1 at 2,000; collateral 249
    d.price(usd(1900))  # equity 149: below IM (190), above MM (95)
    d.order(B, BUY, usd(1900), 2_000_000)
    d.deposit(C, usd(100_000))
    d.order(C, SELL, usd(1910), 1_000_000)
    assert reason(d.order(A, BUY, usd(1910), 1_000, LIMIT_IOC)) == Reject.INSUFFICIENT_MARGIN
    assert reason(d.order(A, BUY, usd(1800), 1_000)) == Reject.INSUFFICIENT_MARGIN  # resting: raises the worst case
    assert accepted(d.order(A, SELL, usd(1950), 500_000))  # resting, does not raise the worst case
    ups = d.order(A, SELL, usd(1900), 500_000, LIMIT_IOC)  # reduces the position
    assert accepted(ups) and of_type(ups, Fill)[0].size == 500_000


def test_resting_reduce_only_is_capped_then_trimmed_and_cancelled(d):
    d.order(A, SELL, P, 5_000)
    d.order(B, BUY, P, 5_000)  # B long 5_000
    ro = order_id(d.order(B, SELL, P + 10 * TICK, 9_000, reduce_only=True))
    assert d.engine.orders[ro].remaining == 5_000 and d.engine.orders[ro].reduce_only  # capped at the position
    assert accepted(d.order(B, SELL, P + 20 * TICK, 5_000, POST_ONLY, reduce_only=True))
    d.order(C, BUY, P + 10 * TICK, 1_000)  # fills 1_000 of the reduce-only order: B long 4_000
    d.order(A, BUY, P, 3_000)  # unrelated: A's bid
    d.order(B, SELL, P, 3_000, LIMIT_IOC)  # B sells 3_000 elsewhere: long 1_000, order still rests with 4_000
    assert d.engine.orders[ro].remaining == 4_000
    ups = d.order(C, BUY, P + 20 * TICK, 10_000)
    fills = of_type(ups, Fill)
    assert [(f.maker_order, f.size) for f in fills] == [(ro, 1_000)]  # trimmed to the 1_000 left to reduce
    cancels = [o for o in of_type(ups, OrderUpdate) if o.trader == B and o.status == CANCELLED]
    assert [c.reason for c in cancels] == [CancelReason.REDUCE_ONLY, CancelReason.REDUCE_ONLY]
    assert not [o for o in d.engine.orders.values() if o.account.trader == B]
    assert d.engine.accounts[B + name32("main") + d.engine.default_token].positions[ETHP].size == 0
    assert conservation(d.engine) == {d.engine.default_token: 0}
