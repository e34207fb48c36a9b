"""One margin requirement function (`margin.requirement`); the per-order fast path (`order_check`) that inlines it
is proven equal, on random accounts, to the same quantities built from the function."""

from __future__ import annotations

import itertools

from engine_helpers import USDC, market_params
from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.engine import margin as mg
from ddx_offchain.engine.state import Account, Market, Position

# The engine's own state objects (compiled, they accept nothing else), built directly: the margin functions read
# only the numbers set here.
_market_ids = itertools.count(1)


def make_market(mark: int, decimals: int, imr: int, mmr: int) -> Market:
    m = Market(market_params(next(_market_ids).to_bytes(32, "big"), size_decimals=decimals, initial_margin_bps=imr,
                             maintenance_margin_bps=mmr))
    m.mark = mark
    return m


def make_account(collateral: int) -> Account:
    a = Account(b"\x01" * 20, b"\x02" * 32, USDC)
    a.collateral = collateral
    return a


def make_position(account: Account, market: Market, size: int, cost: int, open_buy: int, open_sell: int) -> Position:
    pos = Position(account, market)
    pos.size, pos.cost, pos.open_buy, pos.open_sell = size, cost, open_buy, open_sell
    return pos


markets = st.builds(
    make_market,
    mark=st.integers(0, 10**12),
    decimals=st.sampled_from([0, 3, 6, 8]),
    imr=st.integers(1, 5_000),
    mmr=st.integers(1, 2_500),
)
sizes = st.integers(-(10**12), 10**12)
opens = st.integers(0, 10**12)


@st.composite
def accounts(draw):
    held = draw(st.lists(markets, min_size=0, max_size=4))
    account = make_account(draw(st.integers(-(10**15), 10**15)))
    for m in held:
        account.positions[m.id] = make_position(account, m, draw(sizes), draw(st.integers(-(10**15), 10**15)),
                                                draw(opens), draw(opens))
    return account


def reference_equity_and_im(account: Account) -> tuple[int, int]:
    """Equity and IM from the one requirement function, position by position."""
    equity, im = account.collateral, 0
    for pos in account.positions.values():
        m = pos.market
        if pos.size or pos.cost:
            equity += pos.size * m.mark // m.one - pos.cost
        worst = max(abs(pos.size + pos.open_buy), abs(pos.open_sell - pos.size))
        im += mg.requirement(worst, m.mark, m.imr, m.one)
    return equity, im


def test_requirement_rounds_up_against_the_trader():
    assert mg.requirement(1, 1, 1, 1) == 1  # 1/10^4 of a unit is still a unit
    assert mg.requirement(10**6, 2_000 * 10**6, 500, 10**6) == 100 * 10**6  # 1 contract at 2000, 5 %
    assert mg.requirement(0, 10**9, 500, 1) == 0


@settings(max_examples=300, deadline=None)
@given(accounts(), st.data())
def test_order_check_equals_the_requirement_function(account, data):
    """(equity, IM) after a trade, by the fast path, equal the reference on the account as it would be after it."""
    known = list(account.positions.values())
    if known and data.draw(st.booleans()):
        market = data.draw(st.sampled_from(known)).market  # a market the account holds
    else:
        market = data.draw(markets)  # a new one
    d_size, d_cash = data.draw(sizes), data.draw(st.integers(-(10**15), 10**15))
    current = next((p for p in known if p.market is market), None)
    # open totals never go negative (an order adds to them, a cancel or fill takes back what it added)
    d_buy = data.draw(opens) - (current.open_buy if current else 0)
    d_sell = data.draw(opens) - (current.open_sell if current else 0)
    after = make_account(account.collateral - d_cash)
    seen = False
    for key, pos in account.positions.items():
        if pos.market is market:
            seen = True
            pos = make_position(after, market, pos.size + d_size, pos.cost, pos.open_buy + d_buy,
                                pos.open_sell + d_sell)
        after.positions[key] = pos
    if not seen:
        after.positions[market.id] = make_position(after, market, d_size, 0, d_buy, d_sell)
    assert mg.order_check(account, market, d_size, d_cash, d_buy, d_sell) == reference_equity_and_im(after)


@settings(max_examples=300, deadline=None)
@given(accounts())
def test_equity_mm_and_im_are_sums_of_the_requirement(account):
    equity, mm = mg.equity_and_mm(account)
    held = [p for p in account.positions.values() if p.size]
    assert mm == sum(mg.requirement(abs(p.size), p.market.mark, p.market.mmr, p.market.one) for p in held)
    assert equity == account.collateral + sum(p.size * p.market.mark // p.market.one - p.cost for p in held)
    assert equity == mg.equity(account) and equity - account.collateral == mg.unrealized(account)
    assert mg.initial_requirement(account) == reference_equity_and_im(account)[1]
