"""Liquidation (book, insurance takeover, ADL), the insurance fund's own deleveraging, maker margin protection
and funding."""

from engine_helpers import (
    ETHP,
    USDC,
    Driver,
    accepted,
    conservation,
    market_params,
    of_type,
    reason,
    trader,
    usd,
)

from ddx_offchain.engine import margin as mg
from ddx_offchain.engine.commands import BUY, MAIN_STRATEGY, SELL, FundInsurance, UpdateMarket
from ddx_offchain.engine.reasons import CancelReason, Reject
from ddx_offchain.engine.updates import (
    CANCELLED,
    Deleverage,
    Fill,
    FundingPaid,
    Liquidation,
    OrderUpdate,
    PriceUpdate,
    Takeover,
)

A, B, C, F = trader(1), trader(2), trader(3), trader(4)
P = usd(2000)
TICK = 10_000
ONE = 1_000_000


def acct(d, who):
    return d.engine.accounts[who + MAIN_STRATEGY + USDC]


def levered_long(d):
    """A: 250 USDC, long 1 contract at 2,000 from B (B short 1)."""
    d.deposit(A, usd(250))
    d.deposit(B, usd(100_000))
    d.deposit(C, usd(100_000))
    d.price(P)
    d.order(B, SELL, P, ONE)
    d.order(A, BUY, P, ONE)
    assert acct(d, A).collateral == usd(249)  # 1 USDC taker fee


def test_no_liquidation_above_maintenance():
    d = Driver()
    levered_long(d)
    ups = d.price(usd(1890))  # equity 139, MM 94.5
    assert not of_type(ups, Liquidation)


def test_liquidation_against_the_book_then_fee_to_the_fund():
    d = Driver()
    levered_long(d)
    d.order(A, BUY, usd(1500), ONE // 10)  # A's own resting order is cancelled by the liquidation
    d.order(C, BUY, usd(1880), ONE)
    ups = d.price(usd(1800))  # equity 49 < MM 90
    (liq,) = of_type(ups, Liquidation)
    assert (liq.trader, liq.equity, liq.maintenance_margin) == (A, usd(49), usd(90))
    cancelled = [o for o in of_type(ups, OrderUpdate) if o.trader == A]
    assert cancelled[0].status == CANCELLED and cancelled[0].reason == CancelReason.LIQUIDATION
    (fill,) = of_type(ups, Fill)
    assert (fill.maker_trader, fill.price, fill.size, fill.liquidation, fill.taker_fee) == (C, usd(1880), ONE, True, 0)
    # realized -120 → 129; liquidation fee 0.5% of 1,880 = 9.40 to the insurance fund
    assert acct(d, A).collateral == usd(129) - usd(9.4)
    assert d.engine.ledgers[USDC].fund.collateral == usd(9.4)
    assert not acct(d, A).positions[ETHP].size
    assert conservation(d.engine) == {USDC: 0}


def test_book_fills_stop_at_the_bankruptcy_price():
    d = Driver()
    levered_long(d)
    d.order(C, BUY, usd(1760), ONE // 2)  # above bankruptcy (1,751)
    d.order(C, BUY, usd(1740), ONE // 2)  # below: must not be hit
    ups = d.price(usd(1800))
    assert [f.price for f in of_type(ups, Fill)] == [usd(1760)]
    assert of_type(ups, Deleverage)  # no fund money: the rest is deleveraged against B
    assert acct(d, A).collateral == 0


def seed_fund(d, amount):
    # big trade between B and C to collect fees, then capitalize the fund from them
    d.order(C, BUY, P, 400 * ONE)
    d.order(B, SELL, P, 400 * ONE)
    assert reason(d.apply(FundInsurance(d.rid(), USDC, 10**15))) == Reject.BAD_AMOUNT
    assert accepted(d.apply(FundInsurance(d.rid(), USDC, amount)))
    d.order(C, SELL, P, 400 * ONE)
    d.order(B, BUY, P, 400 * ONE)


def test_insurance_takeover_at_the_bankruptcy_price():
    d = Driver()
    levered_long(d)
    seed_fund(d, usd(300))
    fund = d.engine.ledgers[USDC].fund
    ups = d.price(usd(1700))  # equity -51: bankrupt, no bids; the fund keeps 249 ≥ its IM of 170
    (take,) = of_type(ups, Takeover)
    assert take.by_insurance_fund and take.transferred_equity == -usd(51)
    assert fund.positions[ETHP].size == ONE and fund.positions[ETHP].cost == usd(1700)
    assert fund.collateral == usd(300) - usd(51)
    assert acct(d, A).collateral == 0 and not acct(d, A).positions[ETHP].size
    assert conservation(d.engine) == {USDC: 0}


def test_fund_below_initial_margin_means_adl_against_the_most_profitable():
    d = Driver()
    levered_long(d)
    d.deposit(F, usd(100_000))
    d.order(F, SELL, P + 10 * TICK, ONE)
    d.order(C, BUY, P + 10 * TICK, ONE)  # F short 1 at 2,000.10: more profitable than B (short at 2,000)
    ups = d.price(usd(1800))
    (dl,) = of_type(ups, Deleverage)
    assert (dl.counterparty_trader, dl.size) == (F, ONE)
    assert acct(d, B).positions[ETHP].size == -ONE  # untouched
    assert acct(d, A).collateral == 0
    assert sum(p.size for p in d.engine.markets[ETHP].positions.values()) == 0
    assert conservation(d.engine) == {USDC: 0}


def test_adl_shares_the_remaining_equity_and_flattens():
    d = Driver()
    levered_long(d)
    ups = d.price(usd(1800))  # equity +49, no bids, empty fund: B takes A's long at mark plus 49
    (dl,) = of_type(ups, Deleverage)
    assert (dl.counterparty_trader, dl.size, dl.mark, dl.equity_share) == (B, ONE, usd(1800), usd(49))
    b = acct(d, B)
    assert not b.positions[ETHP].size
    # B: sold 1 at 2,000 (maker fee 0.40), closed at 1,800 → +200, plus A's 49
    assert b.collateral == usd(100_000) - usd(0.4) + usd(200) + usd(49)
    assert acct(d, A).collateral == 0
    assert conservation(d.engine) == {USDC: 0}


def test_insolvent_fund_is_deleveraged_and_keeps_nothing_negative():
    d = Driver()
    levered_long(d)
    seed_fund(d, usd(300))
    d.price(usd(1800))  # fund takes A's long (equity 49 + 300 ≥ IM 180)
    fund = d.engine.ledgers[USDC].fund
    assert fund.positions[ETHP].size == ONE
    ups = d.price(usd(1400))  # fund equity 349 - 400 < 0 < MM
    assert [u.trader for u in of_type(ups, Liquidation)] == [fund.trader]
    assert of_type(ups, Deleverage)[0].counterparty_trader == B
    assert not fund.positions[ETHP].size and fund.collateral == 0
    assert conservation(d.engine) == {USDC: 0}


def test_maker_fill_that_would_breach_maintenance_cancels_the_maker_order():
    d = Driver()
    d.deposit(A, usd(250))
    d.deposit(B, usd(100_000))
    d.price(P)
    d.order(A, BUY, P - 10 * TICK, ONE)  # fine at placement (IM 200 of 250)
    d.price(usd(1800))  # mark falls; A has no position, so nothing to liquidate
    ups = d.order(B, SELL, P - 10 * TICK, ONE)  # filling A at 1,999.90 with mark 1,800 would leave A at ~50 < MM
    assert not of_type(ups, Fill)
    (cancel,) = [o for o in of_type(ups, OrderUpdate) if o.trader == A]
    assert cancel.reason == CancelReason.MAKER_MARGIN
    assert accepted(ups)


def test_mark_is_index_plus_clamped_premium():
    d = Driver()
    d.deposit(B, usd(100_000))
    d.price(P)
    d.order(B, BUY, P + 10 * TICK, ONE)
    d.order(B, SELL, P + 30 * TICK, ONE)
    (pu,) = of_type(d.price(P), PriceUpdate)
    assert pu.mark == P + 20 * TICK  # mid 2,000.20: premium 0.20 < cap 20
    d.cancel_all(B)
    d.order(B, BUY, usd(2100), ONE // 10)
    d.order(B, SELL, usd(2200), ONE // 10)
    (pu,) = of_type(d.price(P), PriceUpdate)
    assert pu.mark == P + P // 100  # premium capped at 1%


def funding_setup(index):
    d = Driver()
    d.advance(1)  # the clock starts (funding is owed from its first advance on)
    d.deposit(A, usd(100_000))
    d.deposit(B, usd(100_000))
    d.deposit(C, usd(100_000))
    d.price(index)
    d.order(B, SELL, P, 3_000)
    d.order(A, BUY, P, 3_000)  # A long 0.003, B short 0.003
    d.order(C, BUY, P + TICK * 1000, ONE // 100)
    d.order(C, SELL, P + TICK * 3000, ONE // 100)  # mid 2,020
    d.price(index)
    return d


def test_funding_longs_pay_shorts_rounding_to_the_fund():
    d = funding_setup(P + 3)
    a0, b0 = acct(d, A).collateral, acct(d, B).collateral
    ups = d.advance(3_600_000)
    (fp,) = of_type(ups, FundingPaid)
    # premium 20 - 0.000003 → per contract trunc(19_999_997 / 8) = 2_499_999
    assert (fp.intervals, fp.per_unit) == (1, 2_499_999)
    assert (fp.paid, fp.received, fp.to_insurance) == (7_500, 7_499, 1)  # 7499.997: payer ceil, receiver floor
    assert acct(d, A).collateral == a0 - 7_500 and acct(d, B).collateral == b0 + 7_499
    assert d.engine.ledgers[USDC].fund.collateral == 1
    assert conservation(d.engine) == {USDC: 0}


def test_funding_for_every_interval_crossed_and_not_before():
    d = funding_setup(P)  # time 1
    assert not of_type(d.advance(3_599_998), FundingPaid)  # 3,599,999: one ms short of the boundary
    (fp,) = of_type(d.advance(3 * 3_600_000), FundingPaid)
    assert fp.intervals == 3
    assert d.engine.markets[ETHP].next_funding == 4 * 3_600_000
    assert reason(d.advance(0)) == Reject.TIME_NOT_NEWER


def test_the_first_time_advance_starts_the_funding_clock_instead_of_charging_since_1970():
    d = Driver()
    d.deposit(A, usd(100_000))
    d.deposit(B, usd(100_000))
    d.price(P)
    d.order(B, SELL, P, ONE)
    d.order(A, BUY, P, ONE)  # positions while the sequenced time is still genesis (0)
    now = 1_764_806_400_000  # a real clock: 490,224 funding intervals since 1970
    ups = d.advance(now)
    assert not of_type(ups, FundingPaid)
    assert d.engine.markets[ETHP].next_funding == (now // 3_600_000 + 1) * 3_600_000
    (fp,) = of_type(d.advance(3_600_000), FundingPaid)  # from then on, interval by interval
    assert fp.intervals == 1


def test_funding_is_capped():
    d = Driver(markets=(market_params(funding_dampener=1, funding_cap_bps=5),))
    d.advance(1)
    d.deposit(A, usd(100_000))
    d.deposit(B, usd(100_000))
    d.price(P)
    d.order(B, SELL, P, ONE)
    d.order(A, BUY, P, ONE)
    d.order(B, BUY, P + 1000 * TICK, ONE // 100)
    d.order(B, SELL, P + 3000 * TICK, ONE // 100)
    d.price(P)
    (fp,) = of_type(d.advance(3_600_000), FundingPaid)
    assert fp.per_unit == P * 5 // 10_000  # premium 20 capped at 0.05% of 2,000 = 1


def test_funding_can_liquidate():
    d = Driver(markets=(market_params(funding_dampener=1, funding_cap_bps=1_000, premium_cap_bps=1_000),))
    d.advance(1)
    levered_long(d)
    d.order(C, BUY, usd(2100), ONE // 100)
    d.order(C, SELL, usd(2300), ONE // 100)
    ups = d.price(P)  # mark 2,200 (premium 200): A equity 449, MM 110
    assert not of_type(ups, Liquidation)
    ups = d.advance(2 * 3_600_000)  # pays 2 × 200 = 400 → equity 49 < MM
    assert of_type(ups, FundingPaid) and of_type(ups, Liquidation)
    assert conservation(d.engine) == {USDC: 0}


def test_parameter_change_can_liquidate():
    d = Driver()
    levered_long(d)
    d.price(usd(1900))  # equity 149, MM 95
    ups = d.apply(UpdateMarket(d.rid(), market_params(initial_margin_bps=2_000, maintenance_margin_bps=1_000)))
    assert of_type(ups, Liquidation)  # MM now 190
    assert reason(d.apply(UpdateMarket(d.rid(), market_params(tick=20_000)))) == Reject.BAD_MARKET_PARAMS


def test_margin_helpers_round_against_the_trader():
    assert mg.requirement(1, 1, 1, 10**6) == 1  # any positive requirement is at least one unit
    assert mg.fee(1, 1) == 1
    assert -3 * 5 // 10 == -2  # values floor toward -inf (a short's value is rounded down too)


def test_deficit_shares_never_push_a_counterparty_below_zero_and_balances_absorb_bad_debt():
    d = Driver()
    levered_long(d)  # A long 1 at 2,000 with 249; B short 1 at 2,000
    b, c = acct(d, B), acct(d, C)
    # B moves cash to C (as if it had withdrawn through another path): a short whose equity relies on unrealized PnL
    moved = b.collateral + usd(300)
    b.collateral -= moved
    c.collateral += moved
    assert conservation(d.engine) == {USDC: 0}
    ups = d.price(usd(1500))  # A: equity -251; B (only short) after closing at 1,500 has 200
    (dl,) = of_type(ups, Deleverage)
    assert (dl.counterparty_trader, dl.equity_share) == (B, -usd(200))  # capped at B's equity
    fund = d.engine.ledgers[USDC].fund
    assert b.collateral == 0 and not b.positions[ETHP].size
    assert fund.collateral == -usd(51)  # the uncovered rest is bad debt carried by the fund
    assert acct(d, A).collateral == 0
    assert conservation(d.engine) == {USDC: 0}
    d.epoch()
    # BALANCE = equity scaled by (S - D) / S: the escape hatch never pays more than was deposited
    ledger = d.engine.ledgers[USDC]
    whole = c.collateral
    assert d.engine.balances[C + USDC].amount == whole * (whole - usd(51)) // whole
    assert sum(leaf.amount for leaf in d.engine.balances.values()) + ledger.withdrawable <= ledger.deposited
