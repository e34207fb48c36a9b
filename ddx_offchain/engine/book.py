"""Order book maintenance: resting, removing (lazily) and the fill bookkeeping shared by trades, liquidations
and deleveraging. Functions take the engine so the hot path stays free of extra indirection."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

from .commands import BUY
from .errors import EngineInvariantError
from .state import Order, Position

COMPACT_MIN_DEAD = 32  # rebuild a level's deque once it holds this many dead entries and more dead than live


def rest(order: Order) -> None:
    """Put an order at the back of its price level."""
    book = order.market.book
    levels = book.levels[order.side]
    price = order.price
    lvl = levels.get(price)
    if lvl is None:
        lvl = levels[price] = [deque(), 0]
        insort(book.bid_prices if order.side == BUY else book.ask_prices, price)
    lvl[0].append(order)
    lvl[1] += 1


def unlink(order: Order) -> None:
    """The order has left the book (filled or cancelled, remaining already 0): drop its level when empty,
    compact the level when dead entries pile up."""
    book = order.market.book
    levels = book.levels[order.side]
    price = order.price
    lvl = levels[price]
    live = lvl[1] - 1
    lvl[1] = live
    if not live:
        del levels[price]
        prices = book.bid_prices if order.side == BUY else book.ask_prices
        del prices[bisect_left(prices, price)]
        return
    dq = lvl[0]
    if dq[0] is order:
        dq.popleft()
        while not dq[0].remaining:
            dq.popleft()
    elif len(dq) - live >= COMPACT_MIN_DEAD and len(dq) > 2 * live:
        lvl[0] = deque(o for o in dq if o.remaining)


def apply_fill(pos: Position, q: int, cash: int) -> int:
    """Trade q (signed, > 0 buys) paying cash (signed, > 0 pays) into a position; returns the realized PnL
    credited to the account's collateral. Invariant: collateral - cost changes by exactly -cash.

    Reducing keeps the remaining cost floor(cost * remaining / |size|): the realized PnL is rounded down."""
    if not q:
        raise EngineInvariantError("a fill of zero contracts")
    s = pos.size
    k = pos.cost
    if not s:
        # opening from flat: a new position, realized PnL from zero. A flat position is no tree item, so what it
        # realized before is not state: carrying it over would make the root depend on history a snapshot lacks.
        pos.size = q
        pos.cost = k + cash
        pos.realized = 0
        return 0
    if (s > 0) == (q > 0):
        pos.size = s + q
        pos.cost = k + cash
        return 0
    abs_s = s if s > 0 else -s
    abs_q = q if q > 0 else -q
    if abs_q <= abs_s:
        target = (k * (abs_s - abs_q)) // abs_s
        realized = target - k - cash
        pos.size = s + q
        pos.cost = target
        pos.realized += realized
    else:  # flips: close |s| with the proportional part of the cash, open the rest
        cash_close = (cash * abs_s) // abs_q
        realized = -(k + cash_close)
        pos.size = s + q
        pos.cost = cash - cash_close
        pos.realized = 0
    pos.account.collateral += realized
    return realized


def track(pos: Position) -> None:
    """Keep the market's index of non-zero positions current (funding, liquidation sweeps, ADL)."""
    positions = pos.market.positions
    if pos.size:
        positions[pos.account.skey] = pos
    else:
        positions.pop(pos.account.skey, None)
