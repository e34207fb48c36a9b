"""Margin arithmetic (docs/engine.md, "Margin"). Every rounding goes against the trader:
position values are floored (`//`), requirements and fees are rounded up (ceil).

    value(s)        = floor(s * mark / 10**d)                 (signed: a short's value is negative)
    equity          = collateral + sum(value(s) - cost)
    MM              = sum ceil(|s| * mark * mmr / (10**d * 10^4))
    IM              = sum ceil(max(|s + open_buy|, |s - open_sell|) * mark * imr / (10**d * 10^4))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import Account, Market

BPS = 10_000


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def fee(notional: int, bps: int) -> int:
    return -((-notional * bps) // BPS)


def requirement(abs_size: int, mark: int, bps: int, one: int) -> int:
    """THE margin requirement of |size| contracts at `mark` for a rate in bps, rounded up: every IM and MM in the
    engine is a sum of these. `order_check` inlines it on the per-order path; tests/engine/test_margin.py proves
    the inlined form equal to this one."""
    return -((-abs_size * mark * bps) // (one * BPS))


def equity(account: Account) -> int:
    e = account.collateral
    for pos in account.positions.values():
        s = pos.size
        if s:
            m = pos.market
            e += s * m.mark // m.one - pos.cost
    return e


def equity_and_mm(account: Account) -> tuple[int, int]:
    e = account.collateral
    mm = 0
    for pos in account.positions.values():
        s = pos.size
        if s:
            m = pos.market
            mark = m.mark
            one = m.one
            e += s * mark // one - pos.cost
            mm += requirement(s if s > 0 else -s, mark, m.mmr, one)
    return e, mm


def unrealized(account: Account) -> int:
    u = 0
    for pos in account.positions.values():
        s = pos.size
        if s:
            m = pos.market
            u += s * m.mark // m.one - pos.cost
    return u


def initial_requirement(account: Account) -> int:
    return sum(_im_part(pos.size, pos.open_buy, pos.open_sell, pos.market) for pos in account.positions.values())


def order_check(
    account: Account, market: Market, d_size: int, d_cash: int, d_open_buy: int, d_open_sell: int
) -> tuple[int, int]:
    """(equity, IM) after the account trades d_size in `market` paying d_cash (fees included) and its open order
    totals there change by the deltas. The per-order path: `requirement` and `_im_part` inlined (parity tested)."""
    e = account.collateral - d_cash
    im = 0
    seen = False
    for pos in account.positions.values():
        m = pos.market
        mark = m.mark
        s = pos.size
        ob = pos.open_buy
        os_ = pos.open_sell
        if m is market:
            seen = True
            s += d_size
            ob += d_open_buy
            os_ += d_open_sell
        if s or pos.cost:
            e += s * mark // m.one - pos.cost
        a = s + ob
        b = os_ - s
        worst = a if a > b else b
        if worst:
            im -= (-(worst if worst > 0 else -worst) * mark * m.imr) // (m.one * BPS)
    if not seen:
        mark = market.mark
        s = d_size
        e += s * mark // market.one
        a = s + d_open_buy
        b = d_open_sell - s
        worst = a if a > b else b
        if worst:
            im -= (-(worst if worst > 0 else -worst) * mark * market.imr) // (market.one * BPS)
    return e, im


def free_collateral(collateral: int, unrealized: int, initial: int) -> int:
    """What may leave a strategy account now (a withdraw intent, a transfer): its cash with unrealized losses (not
    profits) counted, less the initial margin of its positions and open orders (docs/engine.md §7). Negative when
    nothing may."""
    return collateral + min(0, unrealized) - initial


def reduces_risk(
    account: Account, market: Market, d_size: int, d_open_buy: int, d_open_sell: int, equity_after: int
) -> bool:
    """The exception for an order below initial margin: it does not raise IM and leaves equity >= MM."""
    im_before = initial_requirement(account)
    im_after = 0
    mm_after = 0
    seen = False
    for pos in account.positions.values():
        m = pos.market
        s = pos.size
        ob = pos.open_buy
        os_ = pos.open_sell
        if m is market:
            seen = True
            s += d_size
            ob += d_open_buy
            os_ += d_open_sell
        im_after += _im_part(s, ob, os_, m)
        mm_after += requirement(abs(s), m.mark, m.mmr, m.one)
    if not seen:
        im_after += _im_part(d_size, d_open_buy, d_open_sell, market)
        mm_after += requirement(abs(d_size), market.mark, market.mmr, market.one)
    return im_after <= im_before and equity_after >= mm_after


def _im_part(s: int, ob: int, os_: int, m) -> int:
    """IM of one market: the worse of all open buys or all open sells filling (docs/engine.md, "Margin")."""
    worst = max(abs(s + ob), abs(os_ - s))
    return requirement(worst, m.mark, m.imr, m.one)
