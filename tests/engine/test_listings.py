"""Operator commands for markets, tokens and index prices, and the listing rules."""

import pathlib
import re

import pytest
from engine_helpers import BTCP, ETHP, Driver, accepted, items_except_cursors, market_params, of_type, reason, usd

from ddx_offchain.engine.commands import IndexPrice, IndexPrices, ListMarket, UpdateMarket
from ddx_offchain.engine.reasons import Reject
from ddx_offchain.engine.updates import MarketUpdate


def test_list_a_market_and_trade_it():
    d = Driver()
    ups = d.apply(ListMarket(d.rid(), market_params(BTCP, tick=1_000_000)))
    assert of_type(ups, MarketUpdate)[0].listed
    assert reason(d.apply(ListMarket(d.rid(), market_params(BTCP)))) == Reject.MARKET_EXISTS
    assert d.engine.markets[BTCP].next_funding == 3_600_000


@pytest.mark.parametrize("overrides,problem", [
    (dict(tick=10_000, lot=10), "multiple of 10\\*\\*size_decimals"),
    (dict(tick=0), "positive"),
    (dict(initial_margin_bps=500, maintenance_margin_bps=500), "maintenance margin < initial margin"),
    (dict(maintenance_margin_bps=0), "maintenance margin"),
    (dict(initial_margin_bps=10_001), "initial margin"),
    (dict(taker_fee_bps=10_001), "taker_fee_bps"),
    (dict(funding_dampener=0), "dampener"),
    (dict(funding_interval_ms=0), "funding_interval_ms"),
    (dict(max_order_notional=0), "max_order_notional"),
    (dict(token=b"\x01" * 20), "unknown collateral token"),
    (dict(size_decimals=40), "size_decimals"),
    (dict(maker_fee_bps=-1), "non-negative"),
])
def test_listing_rules(overrides, problem):
    d = Driver()
    before = items_except_cursors(d.engine)
    ups = d.apply(ListMarket(d.rid(), market_params(BTCP, **overrides)))
    assert reason(ups) == Reject.BAD_MARKET_PARAMS
    assert re.search(problem, ups[0].detail)
    assert items_except_cursors(d.engine) == before


def test_market_id_must_be_non_zero():
    d = Driver()
    ups = d.apply(ListMarket(d.rid(), market_params(b"\x00" * 32)))
    assert reason(ups) == Reject.BAD_MARKET_PARAMS
    assert re.search("non-zero", ups[0].detail)


def test_update_market_keeps_the_fixed_parameters():
    d = Driver()
    assert reason(d.apply(UpdateMarket(d.rid(), market_params(BTCP)))) == Reject.UNKNOWN_MARKET
    assert reason(d.apply(UpdateMarket(d.rid(), market_params(lot=2_000)))) == Reject.BAD_MARKET_PARAMS
    assert accepted(d.apply(UpdateMarket(d.rid(), market_params(taker_fee_bps=9, funding_interval_ms=60_000))))
    m = d.engine.markets[ETHP]
    assert (m.taker_fee, m.funding_interval, m.next_funding) == (9, 60_000, 60_000)


def test_index_price_rules():
    d = Driver()
    assert reason(d.apply(IndexPrices(d.rid(), ()))) == Reject.MALFORMED
    assert reason(d.apply(IndexPrices(d.rid(), (IndexPrice(BTCP, 5),)))) == Reject.UNKNOWN_MARKET
    assert reason(d.apply(IndexPrices(d.rid(), (IndexPrice(ETHP, 0),)))) == Reject.PRICE_NOT_POSITIVE
    assert reason(d.apply(IndexPrices(d.rid(), (IndexPrice(ETHP, 5), IndexPrice(ETHP, 6))))) == Reject.MALFORMED
    # all or nothing: a bad second price leaves the first unapplied
    d.apply(ListMarket(d.rid(), market_params(BTCP)))
    assert reason(d.apply(IndexPrices(d.rid(), (IndexPrice(ETHP, usd(1)), IndexPrice(BTCP, -1))))) \
        == Reject.PRICE_NOT_POSITIVE
    assert d.engine.markets[ETHP].index == 0
    assert accepted(d.apply(IndexPrices(d.rid(), (IndexPrice(ETHP, usd(1)), IndexPrice(BTCP, usd(2))))))


def test_every_rejection_reason_is_exercised_by_a_test():
    text = "".join(p.read_text() for p in pathlib.Path(__file__).parent.glob("test_*.py"))
    untested = [r.name for r in Reject if f"== Reject.{r.name}" not in text and f"Reject.{r.name})," not in text]
    assert not untested, untested
