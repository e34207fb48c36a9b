"""The read-only views (node/views.py) the API serves agree with the engine state and its margin functions."""

from engine_helpers import ETHP, USDC, Driver, trader, usd

from ddx_offchain.engine import margin as mg
from ddx_offchain.engine.commands import BUY, MAIN_STRATEGY, SELL
from ddx_offchain.node import views

A, B = trader(1), trader(2)
P = usd(2000)


def test_trader_book_and_market_views():
    d = Driver()
    d.deposit(A, usd(1_000))
    d.deposit(B, usd(10_000))
    d.price(P)
    d.order(B, SELL, P, 1_000_000)
    d.order(A, BUY, P, 1_000_000)
    d.order(A, BUY, P - 10_000, 100_000)
    d.order(B, SELL, P + 10_000, 200_000)
    d.order(B, SELL, P + 10_000, 300_000)
    d.price(usd(2100))
    v = views.trader_view(d.engine, A)
    assert v.known and [s.strategy for s in v.strategies] == [MAIN_STRATEGY]
    s = v.strategies[0]
    mark = d.engine.markets[ETHP].mark
    assert s.collateral == usd(999) and s.token == USDC
    assert v.positions == [views.PositionView(MAIN_STRATEGY, ETHP, 1_000_000, P, 0, mark, mark - P)]
    assert s.unrealized_pnl == mark - P and s.equity == s.collateral + s.unrealized_pnl
    account = d.engine.accounts[A + MAIN_STRATEGY + USDC]
    assert (s.equity, s.maintenance_margin) == mg.equity_and_mm(account)
    assert s.initial_margin == mg.initial_requirement(account) > s.maintenance_margin
    assert s.free_collateral == usd(999) - s.initial_margin  # unrealized profit does not count
    assert [(o.side, o.price, o.remaining, o.original) for o in v.open_orders] == [(BUY, P - 10_000, 100_000, 100_000)]
    book = views.book_view(d.engine, ETHP)
    assert book.bids == [views.BookLevel(P - 10_000, 100_000)]
    assert book.asks == [views.BookLevel(P + 10_000, 500_000)]
    assert views.book_view(d.engine, ETHP, depth=1).asks == [views.BookLevel(P + 10_000, 500_000)]
    market = views.market_view(d.engine, ETHP)
    assert market.open_interest == 1_000_000 and market.mark == mark and market.token == USDC
    unknown = views.trader_view(d.engine, trader(9))
    assert not unknown.known and unknown.strategies == unknown.positions == unknown.open_orders == []
    assert views.book_view(d.engine, b"\x01" * 32) is None and views.market_view(d.engine, b"\x01" * 32) is None
