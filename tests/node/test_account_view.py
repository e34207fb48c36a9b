"""The account view (node/account.py): liquidation prices against a brute-force sweep that moves one market's mark
through the engine's own margin arithmetic until equity < maintenance, on cross-margined accounts of random
positions; and the margin figures against the engine's (free collateral = what a withdraw intent can move)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from ddx_offchain.engine import margin as mg
from ddx_offchain.engine.commands import BUY, SELL, name32
from ddx_offchain.node.account import account_view, liquidation_price

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
from engine_helpers import USDC, Driver, accepted, market_params, trader  # noqa: E402

COARSE = name32("COARSE")  # size_decimals 0: a contract moves equity by >= 1 per price unit
FINE = name32("FINE")  # size_decimals 2: small sizes make the two roundings wobble over a wide band


def brute_force(account, pos) -> int | None:
    """Move `pos`'s mark from where it is (down for a long, up for a short) until equity < MM."""
    m = pos.market
    mark = m.mark
    try:
        step = -1 if pos.size > 0 else 1
        price = mark
        while 0 <= price <= 100 * mark + 10**6:
            m.mark = price
            equity, maintenance = mg.equity_and_mm(account)
            if equity < maintenance:
                return price
            price += step
        assert pos.size > 0, "a short is always liquidated as the mark rises"
        return None
    finally:
        m.mark = mark


def build(seed: int):
    rng = random.Random(seed)
    mmr = rng.choice((100, 500, 1_000, 2_500))
    params = dict(initial_margin_bps=mmr * 2, maintenance_margin_bps=mmr, maker_fee_bps=rng.choice((0, 2)),
                  taker_fee_bps=rng.choice((0, 5)), market_order_band_bps=10_000)
    d = Driver(tokens=(USDC,), markets=(
        market_params(COARSE, tick=1, lot=1, size_decimals=0, max_order_notional=10**12, **params),
        market_params(FINE, tick=100, lot=1, size_decimals=2, max_order_notional=10**12, **params),
    ))
    a, b = trader(1), trader(2)
    d.deposit(a, rng.randint(2_000, 20_000))
    d.deposit(b, 10**9)
    markets = [COARSE] if rng.random() < 0.3 else [FINE] if rng.random() < 0.3 else [COARSE, FINE]
    for market in markets:
        tick = 100 if market == FINE else 1
        price = rng.randint(200 // tick, 3_000 // tick) * tick
        d.price(price, market)
        size = rng.randint(1, 60) if market == COARSE else rng.randint(10, 300)
        side = rng.choice((BUY, SELL))
        assert accepted(d.order(b, 1 - side, price, size, market=market))
        d.order(a, side, price, size, market=market)  # may be refused for margin: then a holds less
        d.price(max(1, price + rng.randint(-price // 10, price // 10)), market)
    account = d.engine.accounts[a + name32("main") + USDC]
    # explore every regime the formula has, including accounts already below maintenance and K in {0, 1}
    account.collateral += rng.randint(-3_000, 3_000)
    return d, account


def _seeds_with_positions(count: int) -> list[int]:
    """The first `count` seeds whose random orders open a position (the others have nothing to check)."""
    seeds = []
    seed = 0
    while len(seeds) < count:
        _, account = build(seed)
        if any(p.size for p in account.positions.values()):
            seeds.append(seed)
        seed += 1
    return seeds


@pytest.mark.parametrize("seed", _seeds_with_positions(105))
def test_liquidation_price_is_the_first_mark_a_sweep_liquidates_at(seed):
    d, account = build(seed)
    positions = [p for p in account.positions.values() if p.size]
    assert positions
    for pos in positions:
        assert liquidation_price(account, pos) == brute_force(account, pos), (pos.market.id, pos.size)


def test_liquidation_price_covers_longs_shorts_none_and_now():
    """The seeds above meet every case (a guard against a generator that stops exercising one)."""
    seen = set()
    for seed in range(120):
        _, account = build(seed)
        for pos in (p for p in account.positions.values() if p.size):
            price = liquidation_price(account, pos)
            seen.add(("long" if pos.size > 0 else "short",
                      "none" if price is None else "now" if price == pos.market.mark else "later"))
    assert {("long", "none"), ("long", "later"), ("short", "later")} <= seen, seen
    assert ("long", "now") in seen or ("short", "now") in seen, seen


def test_account_view_figures_are_the_engines():
    d, account = build(0)  # a position and free collateral left
    view = account_view(d.engine, trader(1))
    (strategy,) = view.accounts
    equity, maintenance = mg.equity_and_mm(account)
    initial = mg.initial_requirement(account)
    assert (strategy.equity, strategy.maintenance_margin, strategy.initial_margin) == (equity, maintenance, initial)
    assert strategy.available_margin == equity - initial
    assert strategy.unrealized_pnl == equity - account.collateral
    assert sum(p.unrealized_pnl for p in strategy.positions) == strategy.unrealized_pnl
    assert sum(p.maintenance_margin for p in strategy.positions) == maintenance
    # free collateral is exactly what a withdraw intent can move: one more is refused
    free = strategy.free_collateral
    assert free > 0 and strategy.positions  # the boundary below is what is checked
    assert not accepted(d.withdraw(trader(1), free + 1))
    assert accepted(d.withdraw(trader(1), free))
    assert account_view(d.engine, trader(99)).known is False


def synthetic(rng: random.Random):
    """An account built from the engine's state objects directly (no order flow): any collateral, cost, size and
    mark, so the one-unit wobble of a long's f (small sizes, high maintenance rates) lands below the mark often."""
    from ddx_offchain.engine.state import Account, Market, Position

    mmr = rng.choice((500, 2_500, 4_000, 4_999))
    account = Account(trader(1), name32("main"), USDC)
    for market_id, decimals in ((FINE, 2), (COARSE, 0)):
        if market_id == COARSE and rng.random() < 0.5:
            continue
        m = Market(market_params(market_id, tick=10**decimals, lot=1, size_decimals=decimals,
                                 initial_margin_bps=2 * mmr, maintenance_margin_bps=mmr))
        m.mark = rng.randint(50, 1_500)
        pos = account.positions[market_id] = Position(account, m)
        pos.size = rng.choice((1, -1)) * rng.randint(1, 40 if decimals else 5)
        pos.cost = pos.size * rng.randint(50, 1_500) // m.one
    first = account.positions[FINE]
    # collateral putting FINE's maintenance band (f = 0 ± 2) somewhere between 0 and its mark
    value = first.size * first.market.mark // first.market.one
    account.collateral = first.cost - value + rng.randint(-5, 40) + mg.requirement(abs(first.size), first.market.mark, mmr, 100)
    return account, first


def test_liquidation_price_on_synthetic_accounts_including_the_rounding_wobble():
    rng = random.Random(2024)
    for _ in range(3_000):
        account, pos = synthetic(rng)
        for p in account.positions.values():
            assert liquidation_price(account, p) == brute_force(account, p), (p.size, p.cost, account.collateral)
