"""Liquidation, insurance-fund takeover, auto-deleveraging and funding (docs/engine.md, "Liquidation", "Funding").

Called by the engine after a mark or collateral change that is not a trade (index prices, funding, parameter
changes). Trades never need it: the taker is checked against initial margin and every maker fill is refused if it
would leave the maker below maintenance margin.
"""

from __future__ import annotations

from . import book as bk
from . import margin as mg
from .commands import BUY, SELL, ZERO_ID
from .reasons import CancelReason
from .updates import Deleverage, FundingPaid, Liquidation, Takeover

BPS = 10_000


def sweep(engine, markets) -> None:
    """Liquidate every account below maintenance margin that holds a position in `markets`, then deleverage any
    insolvent insurance fund, repeating for the accounts those steps touched until none is below."""
    pending = set()
    for m in markets:
        mark = m.mark
        for pos in m.positions.values():
            a = pos.account
            if pos.safe_version != a.version or not pos.safe_lo <= mark <= pos.safe_hi:
                pending.add(a)
    funds = {engine.ledgers[m.token].fund for m in markets}
    rounds = 0
    while pending or funds:
        rounds += 1
        touched = set()
        below = []
        for a in pending:  # the common case is nobody: find the violators first, sort only them
            if not a.is_fund:
                # mg.equity_and_mm(a), collecting the held positions for _remember_safe_range on the way
                e = a.collateral
                mm = 0
                held = []
                for pos in a.positions.values():
                    s = pos.size
                    if s:
                        m = pos.market
                        mark = m.mark
                        one = m.one
                        e += s * mark // one - pos.cost
                        mm += mg.requirement(s if s > 0 else -s, mark, m.mmr, one)
                        held.append(pos)
                if e < mm:
                    below.append(a)
                elif held:
                    _remember_safe_range(a, e - mm, held)
        below.sort(key=_skey)
        for a in below:
            e, mm = mg.equity_and_mm(a)  # earlier liquidations in this round may have changed it
            if e < mm and _has_position(a):
                touched |= liquidate(engine, a, e, mm)
        funds |= {engine.ledgers[a.token].fund for a in touched}
        for fund in sorted(funds, key=_skey):
            if _has_position(fund):
                e, mm = mg.equity_and_mm(fund)
                if e < mm:
                    engine._emit(Liquidation, fund.trader, fund.strategy, fund.token, e, mm)
                    touched |= deleverage(engine, fund, deficit_only=True)
        pending = touched
        funds = {a for a in touched if a.is_fund}
        if rounds > 10_000:  # each round flattens at least one account for good; this is a guard, not a limit
            raise AssertionError("liquidation cascade did not settle")


def _remember_safe_range(a, cushion: int, held: list) -> None:
    """How far each mark may move with the account provably staying at or above maintenance margin. A move of d
    in one market changes equity by at least s*d/10^d - 1 and MM by at most |s|*|d|*mmr/(10^d*10^4) + 1; giving
    each of the k positions cushion/k, moves with |d| <= (cushion/k - 2) * 10^d * 10^4 / (|s| * (10^4 + mmr)) in
    any or all markets together keep equity >= MM."""
    share = cushion // len(held)  # held: the account's positions with size != 0, at least one
    version = a.version
    for pos in held:
        m = pos.market
        s = pos.size if pos.size > 0 else -pos.size
        d = (share - 2) * m.one * BPS // (s * (BPS + m.mmr)) if share >= 2 else -1
        mark = m.mark
        pos.safe_lo = mark - d
        pos.safe_hi = mark + d
        pos.safe_version = version


def liquidate(engine, a, e, mm) -> set:
    """Close every position of `a`: against the book down to the bankruptcy price, then the rest by insurance
    takeover (if the fund stays above initial margin) or by ADL. Returns the other accounts whose state changed."""
    engine._emit(Liquidation, a.trader, a.strategy, a.token, e, mm)
    for order in sorted(a.orders.values(), key=_seq):
        engine._remove_order(order, CancelReason.LIQUIDATION)
    fee_due = 0
    for mid in sorted(a.positions):
        pos = a.positions[mid]
        s = pos.size
        if not s:
            continue
        m = pos.market
        one = m.one
        mark = m.mark
        tick = m.tick
        eq = mg.equity(a)
        if s > 0:  # sell no lower than the bankruptcy price: value(s at bp) = value(s at mark) - equity
            bp = -((-(s * mark - eq * one)) // s)
            limit = -((-bp) // tick) * tick
            if limit < tick:
                limit = tick
            side = SELL
        else:
            bp = (-s * mark + eq * one) // -s
            limit = bp // tick * tick
            side = BUY
            if limit <= 0:
                continue
        events, filled, _, _, _ = engine._plan(m, a, side, limit, s if s > 0 else -s, True)
        if events:
            notional = engine._execute(m, a, pos, side, ZERO_ID, events, True)
            fee_due -= (-notional * m.liq_fee) // BPS
    fund = engine.ledgers[a.token].fund
    if not _has_position(a):
        fee = min(fee_due, max(a.collateral, 0))
        if fee:
            a.collateral -= fee
            fund.collateral += fee
            engine._account_changed(a)
            engine._account_changed(fund)
        return set()
    if _fund_can_take(a, fund):
        return takeover(engine, a, fund)
    return deleverage(engine, a, deficit_only=False)


def _fund_can_take(a, fund) -> bool:
    """The fund takes over only if, holding the positions at mark plus the transferred equity, it would still meet
    initial margin: otherwise it is "exhausted" and ADL applies."""
    e = mg.equity(fund) + mg.equity(a)
    sizes = {mid: pos.size for mid, pos in fund.positions.items() if pos.size}
    markets = {mid: pos.market for mid, pos in fund.positions.items()}
    for mid, pos in a.positions.items():
        if pos.size:
            sizes[mid] = sizes.get(mid, 0) + pos.size
            markets[mid] = pos.market
    im = 0
    for mid, s in sizes.items():
        m = markets[mid]
        im += mg.requirement(s if s > 0 else -s, m.mark, m.imr, m.one)
    return e >= im


def takeover(engine, a, fund) -> set:
    for mid in sorted(a.positions):
        pos = a.positions[mid]
        s = pos.size
        if not s:
            continue
        m = pos.market
        value = s * m.mark // m.one
        fpos = engine._position(fund, m)
        bk.apply_fill(pos, -s, -value)
        bk.apply_fill(fpos, s, value)
        engine._position_changed(pos)
        engine._position_changed(fpos)
    moved = a.collateral  # the remaining equity (may be negative): the takeover is at the bankruptcy price
    a.collateral = 0
    fund.collateral += moved
    engine._emit(Takeover, a.trader, a.strategy, a.token, True, moved)
    engine._account_changed(a)
    engine._account_changed(fund)
    return {fund}


def deleverage(engine, a, *, deficit_only: bool) -> set:
    """Close `a`'s positions at mark against the most profitable opposite positions, then share `a`'s remaining
    equity among them pro rata to the closed notional (all of it for a trader: the bankruptcy price; only a
    deficit for the insurance fund, which keeps a positive remainder). A deficit share never takes a counterparty
    below zero equity; what no one can cover is bad debt carried by the insurance fund (negative collateral)."""
    weights: dict = {}
    chunks = []
    for mid in sorted(a.positions):
        pos = a.positions[mid]
        s = pos.size
        if not s:
            continue
        m = pos.market
        mark = m.mark
        one = m.one
        long = s > 0
        opposite = [p for p in m.positions.values() if p.account is not a and (p.size > 0) != long]
        opposite.sort(key=lambda p: (-(p.size * mark // one - p.cost), p.account.skey))
        need = s if long else -s
        for p in opposite:
            held = p.size if p.size > 0 else -p.size
            q = need if need < held else held
            cash = q * mark // one
            if long:  # a sells q to the short counterparty
                bk.apply_fill(pos, -q, -cash)
                bk.apply_fill(p, q, cash)
            else:
                bk.apply_fill(pos, q, cash)
                bk.apply_fill(p, -q, -cash)
            engine._position_changed(p)
            weights[p.account] = weights.get(p.account, 0) + cash
            chunks.append((m, p.account, q, mark))
            need -= q
            if not need:
                break
        engine._position_changed(pos)
    remaining = a.collateral
    share_out = remaining if not deficit_only or remaining < 0 else 0
    shares = _pro_rata(share_out, weights)
    if share_out < 0:  # nobody is pushed below zero by a deficit share: the uncovered rest is the fund's bad debt
        for cp in shares:
            floor = -max(mg.equity(cp), 0)
            if shares[cp] < floor:
                shares[cp] = floor
    covered = sum(shares.values())
    a.collateral -= covered
    for cp in sorted(weights, key=_skey):
        cp.collateral += shares[cp]
    fund = engine.ledgers[a.token].fund
    if not a.is_fund and a.collateral:
        fund.collateral += a.collateral  # only ever negative here: uncovered bad debt
        a.collateral = 0
        engine._account_changed(fund)
    first = set()
    for m, cp, q, mark in chunks:
        share = 0
        if cp not in first:
            first.add(cp)
            share = shares[cp]
        engine._emit(Deleverage, m.id, a.trader, a.strategy, cp.trader, cp.strategy, q, mark, share)
    if not deficit_only:
        engine._emit(Takeover, a.trader, a.strategy, a.token, False, covered)
    engine._account_changed(a)
    for cp in sorted(weights, key=_skey):
        engine._account_changed(cp)
    return set(weights)


def _pro_rata(amount: int, weights: dict) -> dict:
    """Split `amount` by weight with floor division; the last account (by key) takes the rounding remainder."""
    ordered = sorted(weights, key=_skey)
    total = sum(weights.values())
    shares = {}
    given = 0
    for cp in ordered[:-1]:
        share = amount * weights[cp] // total if total else 0
        shares[cp] = share
        given += share
    if ordered:
        shares[ordered[-1]] = amount - given
    return shares


def funding_per_unit(m) -> int:
    """The funding of one whole contract for one interval at the market's current mark and index:
    f = clamp(trunc((mark - index) / dampener), ±index * funding_cap); > 0: longs pay shorts. Pure: what
    `pay_funding` pays and what market data shows as the predicted next funding."""
    premium = m.mark - m.index
    per = premium // m.dampener if premium >= 0 else -((-premium) // m.dampener)
    cap = m.index * m.funding_cap // BPS
    if per > cap:
        return cap
    if per < -cap:
        return -cap
    return per


def funding_transfer(size: int, per: int, intervals: int, one: int) -> int:
    """The collateral change of a position of `size` (signed) for funding `per` over `intervals`: payers pay
    ceil, receivers receive floor (the remainder goes to the insurance fund)."""
    return (-size * per * intervals) // one  # -ceil(owed / one) when owing, floor(-owed / one) when owed


def pay_funding(engine, m) -> None:
    """Funding for every interval boundary passed: per whole contract per interval `funding_per_unit(m)`; longs
    pay f * size when f > 0. Payers pay ceil, receivers receive floor; the remainder goes to the insurance fund."""
    intervals = (engine.time - m.next_funding) // m.funding_interval + 1
    per = funding_per_unit(m)
    m.next_funding += intervals * m.funding_interval
    m.last_funding = per
    m.cumulative_funding += per * intervals
    engine.dirty.add(m.funding_view)
    paid = received = 0
    if per and m.positions:
        one = m.one
        for skey in sorted(m.positions):
            pos = m.positions[skey]
            a = pos.account
            amount = funding_transfer(pos.size, per, intervals, one)
            a.collateral += amount
            if amount < 0:
                paid -= amount
            else:
                received += amount
            engine._account_changed(a)
        fund = engine.ledgers[m.token].fund
        if paid != received:
            fund.collateral += paid - received
            engine._account_changed(fund)
    engine._emit(FundingPaid, m.id, intervals, per, paid, received, paid - received)


def _has_position(a) -> bool:
    for pos in a.positions.values():
        if pos.size:
            return True
    return False


def _skey(a):
    return a.skey


def _seq(order):
    return order.seq
