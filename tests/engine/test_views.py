"""Read-only views agree with the state and the margin formulas."""

from ddx_offchain.engine import views
from ddx_offchain.engine.commands import BUY, MAIN_STRATEGY, SELL

from engine_helpers import ETHP, USDC, Driver, trader, usd

A, B = trader(1), trader(2)
P = usd(2000)


def test_strategy_book_and_market_views():
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
    v = views.strategy_view(d.engine, A, MAIN_STRATEGY, USDC)
    assert v["collateral"] == usd(999)
    assert v["positions"] == [{"market": "0x" + ETHP.hex(), "size": 1_000_000, "cost": P, "realized_pnl": 0,
                               "mark": v["positions"][0]["mark"], "unrealized_pnl": v["positions"][0]["mark"] - P}]
    assert v["equity"] == v["collateral"] + v["unrealized_pnl"]
    assert v["free_collateral"] == usd(999) - v["initial_margin"]  # unrealized profit does not count
    assert [o["remaining"] for o in v["orders"]] == [100_000]
    book = views.book_view(d.engine, ETHP)
    assert book["bids"] == [[P - 10_000, 100_000, 1]]
    assert book["asks"] == [[P + 10_000, 500_000, 2]]
    assert views.market_view(d.engine, ETHP)["open_interest"] == 1_000_000
    assert views.strategy_view(d.engine, trader(9), MAIN_STRATEGY, USDC) is None
    assert views.book_view(d.engine, b"\x01" * 32) is None
