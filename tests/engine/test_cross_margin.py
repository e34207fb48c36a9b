"""Cross margin inside a strategy account, separation between tokens, and liquidation of several positions."""

from engine_helpers import BTCP, ETHP, USDC, Driver, accepted, conservation, market_params, of_type, reason, trader, usd

from ddx_offchain.engine.commands import BUY, MAIN_STRATEGY, MARKET, SELL, IndexPrice, IndexPrices, ListToken
from ddx_offchain.engine.reasons import CancelReason, Reject
from ddx_offchain.engine.updates import Fill, Liquidation, OrderUpdate

A, B, C = trader(1), trader(2), trader(3)
DAI = bytes.fromhex("6b175474e89094c44da98b954eedeac495271d0f")
SOLP = b"SOLP".ljust(32, b"\x00")
ONE = 1_000_000


def two_markets():
    d = Driver(markets=(market_params(ETHP), market_params(BTCP, tick=1_000_000)))
    d.deposit(A, usd(1_000))
    d.deposit(B, usd(100_000))
    d.deposit(C, usd(100_000))
    d.apply(IndexPrices(d.rid(), (IndexPrice(ETHP, usd(2000)), IndexPrice(BTCP, usd(50_000)))))
    return d


def prices(d, eth, btc):
    return d.apply(IndexPrices(d.rid(), (IndexPrice(ETHP, usd(eth)), IndexPrice(BTCP, usd(btc)))))


def test_profit_in_one_market_carries_a_loss_in_the_other():
    d = two_markets()
    d.order(B, SELL, usd(2000), 2 * ONE)
    d.order(A, BUY, usd(2000), 2 * ONE)  # long 2 ETH (IM 400)
    d.order(B, BUY, usd(50_000), ONE // 10, market=BTCP)
    d.order(A, SELL, usd(50_000), ONE // 10, market=BTCP)  # short 0.1 BTC (IM 500): 900 of ~997 used
    # equity 995.50 after fees. ETH -600, BTC +600: equity 995.50 ≥ MM 5% of (3,400 + 4,400) = 390
    assert not of_type(prices(d, 1700, 44_000), Liquidation)
    # the hedge is gone: equity 395.50 < MM 5% of (3,400 + 5,000) = 420
    assert of_type(prices(d, 1700, 50_000), Liquidation)


def test_liquidation_closes_every_position_in_market_order():
    d = two_markets()
    d.order(B, SELL, usd(2000), 2 * ONE)
    d.order(A, BUY, usd(2000), 2 * ONE)
    d.order(B, BUY, usd(50_000), ONE // 10, market=BTCP)
    d.order(A, SELL, usd(50_000), ONE // 10, market=BTCP)
    d.order(C, BUY, usd(1790), 2 * ONE)
    d.order(C, SELL, usd(50_100), ONE // 10, market=BTCP)
    ups = prices(d, 1700, 50_100)  # equity 385.50 < MM 420.50
    assert of_type(ups, Liquidation)
    assert [f.market for f in of_type(ups, Fill)] == sorted([ETHP, BTCP])  # BTCP < ETHP bytewise
    a = d.engine.accounts[A + MAIN_STRATEGY + USDC]
    assert not any(p.size for p in a.positions.values())
    assert a.collateral >= 0
    assert conservation(d.engine) == {USDC: 0}


def test_tokens_never_share_margin():
    d = Driver()
    d.apply(ListToken(d.rid(), DAI))
    from ddx_offchain.engine.commands import ListMarket

    d.apply(ListMarket(d.rid(), market_params(SOLP, token=DAI, tick=1_000, lot=1_000)))
    d.deposit(A, usd(100_000))  # USDC only
    d.apply(IndexPrices(d.rid(), (IndexPrice(SOLP, usd(150)),)))
    ups = d.order(A, BUY, usd(150), ONE, market=SOLP)
    assert reason(ups) == Reject.INSUFFICIENT_MARGIN and "token" in ups[0].detail
    d.deposit(A, usd(100), token=DAI)
    assert accepted(d.order(A, BUY, usd(150), ONE // 2, market=SOLP))
    assert conservation(d.engine) == {USDC: 0, DAI: 0}


def test_market_order_without_liquidity_is_accepted_and_cancelled():
    d = two_markets()
    ups = d.order(A, BUY, 0, 1_000, MARKET)
    assert accepted(ups)
    (ou,) = of_type(ups, OrderUpdate)
    assert ou.reason == CancelReason.IOC_REMAINDER and ou.remaining == 0
