"""A trader's account view: the margin figures of docs/engine.md per strategy account, and each position's
liquidation price, read from the live engine state (nothing here changes it).

Liquidation price (docs/engine.md, "Liquidation price"). A strategy account is cross-margined over the markets of
its collateral token, so a position's liquidation price moves only its own market's mark, every other mark held
where it is. With that market's mark at P, in the engine's integer arithmetic:

    f(P) = equity(P) - MM(P)
         = K + floor(s * P / 10**d) - ceil(|s| * P * mmr / (10**d * 10^4))
    K    = collateral - cost + sum over the account's other positions of (value - cost - MM at their marks)

The account is liquidated when f < 0. The liquidation price of a long (s > 0) is the highest P <= mark with
f(P) < 0 (None when there is none: no mark down to 0 liquidates it); of a short, the lowest P >= mark with
f(P) < 0. Either is the current mark when the account is already below maintenance. For a short f never rises
with P (a binary search finds it); for a long the two roundings make f wobble by one unit, so the search walks
down f's breakpoints from where f is provably positive — the answer is exactly the first mark a sweep from the
current mark downwards would liquidate at.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import margin as mg
from ..engine.engine import Engine

BPS = 10_000


@dataclass(frozen=True, slots=True)
class AccountPosition:
    market: bytes
    size: int  # signed: > 0 long
    cost: int
    entry_price: int  # |cost| * 10**d // |size|: the average entry, floored
    mark: int
    notional: int  # |value| at the mark
    unrealized_pnl: int
    realized_pnl: int
    initial_margin: int  # this position's share of IM (its open orders included)
    maintenance_margin: int
    liquidation_price: int | None


@dataclass(frozen=True, slots=True)
class StrategyAccount:
    strategy: bytes
    token: bytes
    collateral: int
    unrealized_pnl: int
    equity: int  # collateral + unrealized PnL
    initial_margin: int  # IM used: positions and open orders
    maintenance_margin: int
    available_margin: int  # equity - IM: what new orders may use (negative: only risk-reducing orders pass)
    free_collateral: int  # what a withdraw intent may take now (unrealized profit does not count)
    positions: list[AccountPosition]


@dataclass(frozen=True, slots=True)
class AccountView:
    trader: bytes
    known: bool
    accounts: list[StrategyAccount]


def liquidation_price(account, pos) -> int | None:
    """The mark of `pos`'s market at which `account` falls below maintenance margin (module docstring)."""
    s = pos.size
    m = pos.market
    mark = m.mark
    if not s or mark <= 0:
        return None
    one, mmr = m.one, m.mmr
    k = account.collateral - pos.cost
    for other in account.positions.values():
        if other is pos or not other.size:
            continue
        om = other.market
        z = other.size
        k += z * om.mark // om.one - other.cost - mg.requirement(z if z > 0 else -z, om.mark, om.mmr, om.one)
    size = s if s > 0 else -s

    def f(price: int) -> int:
        return k + s * price // one - mg.requirement(size, price, mmr, one)

    if f(mark) < 0:
        return mark
    if s < 0:
        lo, hi = mark, mark + 1  # f(lo) >= 0; find hi with f(hi) < 0, then the first such price
        while f(hi) >= 0:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if f(mid) < 0:
                hi = mid
            else:
                lo = mid
        return hi
    # a long: f(P) > g(P) - 2 with g(P) = k + P * s * (1 - mmr / 10^4) / 10**d, so f(P) > 0 once g(P) >= 2
    slope = s * (BPS - mmr)
    start = mark - 1
    if k >= 2:
        return None
    p_hi = -((-(2 - k) * one * BPS) // slope)  # the least P with g(P) >= 2
    if p_hi <= start:
        start = p_hi
    price = start
    mm_num = size * mmr
    mm_den = one * BPS
    while price >= 0:
        if f(price) < 0:
            return price
        # f is constant down to the larger of where either rounded term last changed: jump below it
        q = s * price // one
        low_value = -((-q * one) // s)  # least P' with floor(s * P' / one) == q
        j = -((-mm_num * price) // mm_den)
        low_mm = (j - 1) * mm_den // mm_num + 1 if j > 0 else 0  # least P' with ceil(mm_num * P' / mm_den) == j
        price = max(low_value, low_mm) - 1
    return None


def strategy_accounts(engine: Engine, trader: bytes) -> list:
    """`trader`'s strategy accounts (strategies x listed tokens, in key order: by key, never a scan of all
    accounts); empty for an unknown trader."""
    t = engine.traders.get(trader)
    if t is None:
        return []
    tokens = sorted(engine.ledgers)
    return [a for strategy in sorted(t.strategies) for token in tokens
            if (a := engine.accounts.get(trader + strategy + token)) is not None]


@dataclass(frozen=True, slots=True)
class MarginFigures:
    """A strategy account's margin figures (docs/engine.md), the same for every view that shows them."""

    collateral: int
    unrealized_pnl: int
    equity: int  # collateral + unrealized PnL at the marks
    initial_margin: int  # IM used: positions and open orders
    maintenance_margin: int  # below this equity the account is liquidated
    free_collateral: int  # what a withdraw intent may take now (unrealized profit does not count)


def margin_figures(a) -> MarginFigures:
    equity, maintenance = mg.equity_and_mm(a)
    initial = mg.initial_requirement(a)
    unrealized = mg.unrealized(a)
    free = max(0, mg.free_collateral(a.collateral, unrealized, initial))
    return MarginFigures(a.collateral, unrealized, equity, initial, maintenance, free)


def account_view(engine: Engine, trader: bytes) -> AccountView:
    """Every strategy account of `trader` with its margin figures and each position's liquidation price."""
    return AccountView(trader, trader in engine.traders, [_strategy_account(a) for a in strategy_accounts(engine, trader)])


def _strategy_account(a) -> StrategyAccount:
    f = margin_figures(a)
    positions = []
    for market_id, p in sorted(a.positions.items()):
        if not p.size:
            continue
        m = p.market
        size = p.size if p.size > 0 else -p.size
        value = p.size * m.mark // m.one
        positions.append(AccountPosition(
            market_id, p.size, p.cost, (p.cost if p.cost > 0 else -p.cost) * m.one // size, m.mark,
            value if value > 0 else -value, value - p.cost, p.realized, mg._im_part(p.size, p.open_buy, p.open_sell, m),
            mg.requirement(size, m.mark, m.mmr, m.one), liquidation_price(a, p),
        ))
    return StrategyAccount(
        a.strategy, a.token, f.collateral, f.unrealized_pnl, f.equity, f.initial_margin, f.maintenance_margin,
        f.equity - f.initial_margin, f.free_collateral, positions,
    )
