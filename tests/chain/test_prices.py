"""Index prices: the aggregation, clamp, publishing and verification rules at their boundaries (chain/core/prices.py),
the sources' exact decimal conversion and ticker formats (chain/price_sources.py), and the config section."""

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from chainlab import FakePriceSource

from ddx_offchain.chain.core.prices import (
    Aggregate,
    NoPrice,
    Observation,
    PriceError,
    PriceLedger,
    PriceRules,
    Verdict,
    aggregate,
    clamp,
    due,
    verify_price,
)
from ddx_offchain.chain.price_feed import MarketFeed, PriceFeed
from ddx_offchain.chain.price_sources import (
    HttpJsonSource,
    PriceSourceError,
    decimal_units,
    json_path,
    preset_url,
    scale,
)
from ddx_offchain.engine.commands import IndexPrices

RULES = PriceRules(staleness_ms=10_000, outlier_bps=200, min_sources=2, max_change_bps=500, cadence_ms=5_000,
                   move_bps=10, tolerance_bps=50, window_ms=3_000)
ETHP = b"ETHP".ljust(32, b"\0")


def obs(*prices, at=100_000):
    return [Observation(f"s{i}", p, at) for i, p in enumerate(prices)]


def test_median_of_fresh_sources_is_one_a_source_reported():
    assert aggregate(obs(100, 101, 102), 100_000, RULES).price == 101
    assert aggregate(obs(100, 101, 102, 101), 100_000, RULES).price == 101  # even count: the lower middle
    assert aggregate(obs(100, 101), 100_000, RULES).price == 100


def test_staleness_boundary():
    fresh_at_limit = obs(100, 100, at=90_000)  # exactly staleness_ms old: counts
    assert isinstance(aggregate(fresh_at_limit, 100_000, RULES), Aggregate)
    stale = obs(100, 100, at=89_999)
    result = aggregate(stale, 100_000, RULES)
    assert isinstance(result, NoPrice) and "0 fresh" in result.reason
    future = obs(100, 100, at=100_001)  # a clock ahead of ours is not trusted either
    assert isinstance(aggregate(future, 100_000, RULES), NoPrice)


def test_outlier_boundary_and_min_sources():
    # median 10,000; 200 bps = 200: 10,200 is kept, 10,201 dropped
    kept = aggregate(obs(10_000, 10_000, 10_200), 100_000, RULES)
    assert kept.used == ("s0", "s1", "s2") and kept.dropped == ()
    dropped = aggregate(obs(10_000, 10_000, 10_201), 100_000, RULES)
    assert dropped.used == ("s0", "s1") and dropped.dropped == ("s2",) and dropped.price == 10_000
    # two sources far apart: each is an outlier to the (lower) median but one -- fewer than min_sources remain
    split = aggregate(obs(10_000, 20_000), 100_000, RULES)
    assert isinstance(split, NoPrice) and "disagree" in split.reason
    assert isinstance(aggregate(obs(10_000), 100_000, RULES), NoPrice)  # one source, two needed


def test_a_source_counts_once_with_its_newest_value_and_non_positive_values_are_ignored():
    observations = [Observation("a", 100, 99_000), Observation("a", 300, 100_000), Observation("b", 300, 100_000),
                    Observation("c", 0, 100_000), Observation("d", -5, 100_000)]
    result = aggregate(observations, 100_000, RULES)
    assert result.price == 300 and result.used == ("a", "b")


def test_clamp_boundaries():
    assert clamp(10_500, 10_000, 500) == 10_500  # exactly 5%: unchanged
    assert clamp(10_501, 10_000, 500) == 10_500
    assert clamp(1, 10_000, 500) == 9_500
    assert clamp(123, None, 500) == 123  # the first price of a market is not clamped


def test_publishing_rule_cadence_and_move_boundaries():
    assert due(100, None, None, 0, RULES)
    assert not due(10_000, 10_000, 0, 4_999, RULES)
    assert due(10_000, 10_000, 0, 5_000, RULES)  # cadence reached
    assert due(10_010, 10_000, 0, 1, RULES)  # exactly 10 bps: at once
    assert not due(10_009, 10_000, 0, 1, RULES)


def _sequenced(price, previous=None, applied_at=100_000, live=True):
    ledger = PriceLedger()
    if previous is not None:
        ledger.record(0, ETHP, previous, applied_at - 1_000, True)
    return ledger.record(0, ETHP, price, applied_at, live)


def test_verification_tolerance_window_and_clamp():
    own = [Aggregate(10_000, 100_500, ("a", "b"), ())]
    assert verify_price(_sequenced(10_050), own, 200_000, RULES).verdict is Verdict.CONFIRMED  # exactly 50 bps
    mismatch = verify_price(_sequenced(10_051), own, 200_000, RULES)
    assert mismatch.verdict is Verdict.MISMATCH and "10000" in mismatch.reason
    # the leader clamped a real 10% move to 5%: followers clamp their own aggregate the same way
    own_moved = [Aggregate(11_000, 100_000, ("a",), ())]
    assert verify_price(_sequenced(10_500, previous=10_000), own_moved, 200_000, RULES).verdict is Verdict.CONFIRMED
    assert verify_price(_sequenced(11_000, previous=10_000), own_moved, 200_000, RULES).verdict is Verdict.MISMATCH
    # own aggregates only count within window_ms of the apply time
    far = [Aggregate(10_000, 103_001, ("a",), ())]
    assert verify_price(_sequenced(10_000), far, 103_000, RULES).verdict is Verdict.PENDING  # window not over yet
    unverified = verify_price(_sequenced(10_000), far, 103_001, RULES)
    assert unverified.verdict is Verdict.UNVERIFIED and "no price" in unverified.reason
    assert verify_price(_sequenced(10_000, live=False), own, 200_000, RULES).verdict is Verdict.UNVERIFIED


def test_ledger_verdict_per_epoch_mismatch_is_final():
    ledger = PriceLedger()
    a = ledger.record(1, ETHP, 100, 1_000, True)  # applied in epoch 1: part of epoch 2's state
    b = ledger.record(2, ETHP, 200, 2_000, True)
    assert ledger.verdict_for_epoch(1) is None  # nothing applied before epoch 1
    assert ledger.verdict_for_epoch(2).verdict is Verdict.PENDING
    own_good, own_bad = [Aggregate(100, 1_000, ("a",), ())], [Aggregate(150, 2_000, ("a",), ())]
    ledger.set_result(a, verify_price(a, own_good, 10_000, RULES))
    assert ledger.verdict_for_epoch(2) is None
    ledger.set_result(b, verify_price(b, own_bad, 10_000, RULES))
    assert ledger.verdict_for_epoch(3).verdict is Verdict.MISMATCH and ledger.mismatched == 1
    ledger.set_result(b, verify_price(b, [Aggregate(200, 2_000, ("a",), ())], 10_000, RULES))
    assert ledger.verdict_for_epoch(3).verdict is Verdict.MISMATCH  # never forgotten
    ledger.forget_before(3)
    assert len(ledger) == 1 and ledger.verdict_for_epoch(3).verdict is Verdict.MISMATCH


@pytest.mark.parametrize("bad", [dict(staleness_ms=0), dict(outlier_bps=10_001), dict(min_sources=0), dict(window_ms=-1)])
def test_rules_out_of_range_are_typed_errors(bad):
    with pytest.raises(PriceError):
        PriceRules(**bad)


# ---- sources -------------------------------------------------------------------------------------------------

def test_decimal_conversion_is_exact_and_rounds_toward_zero():
    assert decimal_units("2345.67", 6) == 2_345_670_000
    assert decimal_units("0.1234567", 6) == 123_456  # truncated, never rounded up
    assert decimal_units("3", 0) == 3 and decimal_units("3.99", 0) == 3
    assert decimal_units("123456789012345678901234567890.123456789012345678", 18) == 123456789012345678901234567890123456789012345678
    for bad in ("-1", "1e5", "", "1.2.3", "0x10", " "):
        with pytest.raises(PriceSourceError):
            decimal_units(bad, 6)
    assert scale(234_567_000_000, 8, 6) == 2_345_670_000 and scale(5, 2, 4) == 500


def test_json_path_members_indexes_and_the_only_member():
    doc = {"result": {"XETHZUSD": {"c": ["2345.6", "0.1"]}}, "list": [{"p": "1"}]}
    assert json_path(doc, "result.*.c.0") == "2345.6" and json_path(doc, "list.0.p") == "1"
    for bad in ("result.missing", "list.5", "list.x", "result.*.c.0.0"):
        with pytest.raises(PriceSourceError):
            json_path(doc, bad)
    with pytest.raises(PriceSourceError):
        json_path({"a": 1, "b": 2}, "*")


TICKERS = {  # each preset's public answer shape, as the exchanges document them
    "binance": {"symbol": "ETHUSDT", "price": "2345.67000000"},
    "coinbase": {"data": {"amount": "2345.67", "base": "ETH", "currency": "USD"}},
    "kraken": {"error": [], "result": {"XETHZUSD": {"a": ["2345.70", "1", "1.0"], "c": ["2345.67", "0.5"]}}},
    "okx": {"code": "0", "data": [{"instId": "ETH-USDT", "last": "2345.67"}]},
    "bybit": {"retCode": 0, "result": {"list": [{"symbol": "ETHUSDT", "lastPrice": "2345.67"}]}},
}


def _serve(routes):
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return TestServer(app)


def test_every_preset_reads_its_exchanges_ticker_format():
    async def scenario():
        async def ticker(request):
            for name, doc in TICKERS.items():
                url, _ = preset_url(name, "ETH-USD", "http://x")
                if request.path_qs == url[len("http://x"):]:
                    return web.json_response(doc)
            return web.Response(status=404)

        server = _serve({"/{tail:.*}": ticker})
        await server.start_server()
        try:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                for name in TICKERS:
                    url, path = preset_url(name, "ETH-USD", f"http://127.0.0.1:{server.port}")
                    observation = await HttpJsonSource(name, url, path, 6, session=session, clock_ms=lambda: 7).read()
                    assert (observation.price, observation.at_ms) == (2_345_670_000, 7), name
        finally:
            await server.close()

    asyncio.run(scenario())


def test_http_source_failures_are_typed():
    async def scenario():
        async def number(_):
            return web.Response(text='{"price": 2345.67}', content_type="application/json")  # a JSON number: exact too

        async def broken(_):
            return web.Response(status=502)

        async def garbage(_):
            return web.Response(text="<html>")

        async def negative(_):
            return web.json_response({"price": "-1"})

        async def huge(_):
            return web.Response(body=b" " * (1 << 20) + b"{}")

        server = _serve({"/n": number, "/b": broken, "/g": garbage, "/neg": negative, "/h": huge})
        await server.start_server()
        base = f"http://127.0.0.1:{server.port}"
        try:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                assert (await HttpJsonSource("n", base + "/n", "price", 6, session=session).read()).price == 2_345_670_000
                for path, why in (("/b", "HTTP 502"), ("/g", "not JSON"), ("/neg", "decimal"), ("/h", "1 MiB")):
                    with pytest.raises(PriceSourceError, match=why):
                        await HttpJsonSource("x", base + path, "price", 6, session=session).read()
                with pytest.raises(PriceSourceError):
                    await HttpJsonSource("down", "http://127.0.0.1:1/", "price", 6, session=session).read()
        finally:
            await server.close()

    asyncio.run(scenario())


def test_feed_proposes_due_prices_and_verifies_what_was_sequenced():
    now = [1_000_000]
    clock = lambda: now[0]  # noqa: E731
    sources = [FakePriceSource("a", 2_000, clock), FakePriceSource("b", 2_010, clock), FakePriceSource("c", None, clock)]
    feed = PriceFeed([MarketFeed(ETHP, sources)], RULES, clock_ms=clock)
    asyncio.run(feed.poll_once())
    command = feed.proposal()
    assert isinstance(command, IndexPrices) and [(p.market, p.price) for p in command.prices] == [(ETHP, 2_000)]
    assert feed.status()["markets"]["ETHP"]["sourceErrors"] == {"c": 1}
    feed.applied(command, epoch=0, log_index=10, commit_index=10)
    assert feed.proposal() is None  # just sequenced: neither cadence nor move reached
    now[0] += 5_000
    asyncio.run(feed.poll_once())
    assert feed.proposal() is not None  # cadence
    assert feed.check_epoch(1) is None  # confirmed against its own series
    # a price this operator's sources contradict (sequenced by a lying leader)
    feed.applied(IndexPrices(b"\1" * 32, (command.prices[0].__class__(ETHP, 1_500),)), epoch=1, log_index=11, commit_index=11)
    check = feed.check_epoch(2)
    assert check.verdict is Verdict.MISMATCH and feed.status()["mismatches"]
    # applied far behind the commit index (catching up): not judged against today's prices
    late = PriceFeed([MarketFeed(ETHP, sources)], RULES, clock_ms=clock)
    asyncio.run(late.poll_once())
    late.applied(IndexPrices(b"\2" * 32, (command.prices[0].__class__(ETHP, 1_500),)), epoch=0, log_index=1, commit_index=10_000)
    assert late.check_epoch(1) is None and late.ledger.unverified == 1
