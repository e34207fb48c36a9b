"""Market data built from the committed update stream (docs/api.md, "Market data").

`MarketData` is fed each applied entry's execution updates in ordinal order and keeps what a venue's public feeds
show: recent trades, OHLCV candles, rolling 24 h statistics, funding history, the aggregated (L2) book with a
sequence number and a checksum, and each entry's book delta. It is sans-IO and deterministic: its state is a
function of the updates it was fed (and of the seed it was restarted from), so every operator and every replica
that applies the same log serves the same figures. Time is the engine's sequenced time (`TimeAdvanced`), never a
wall clock: a fill happens at the sequenced time of the entry that made it.

Only the update kinds it reads matter (`Fill`, `OrderUpdate`, `PositionUpdate`, `FundingPaid`, `TimeAdvanced`);
every other kind passes through untouched, so a new update type needs code here only if it changes one of these
figures. Everything is bounded (rings of trades, candles, funding records and book deltas per market).

The L2 book is the sum of the remaining sizes of the resting orders at each (side, price), tracked from
`OrderUpdate`s: an order's first OPEN update rests it; each later update sets its remaining (0 once FILLED or
CANCELLED). A book's sequence number is the ordinal of the last update that changed its aggregated levels; a delta
names the sequence number it applies on (`prev_seq`) and the one it produces (`seq`).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..engine.commands import BUY
from ..engine.risk import funding_transfer
from ..engine.updates import OPEN, Fill, FundingPaid, OrderUpdate, PositionUpdate, TimeAdvanced, Update
from ..protocol.book_checksum import CHECKSUM_DEPTH, book_checksum

INTERVALS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
DAY_MS = 86_400_000
MAX_TRADES = 1_000  # recent trades kept per market
MAX_CANDLES = 2_000  # candles kept per market and interval (1440 one-minute candles make the 24 h window)
MAX_FUNDING = 10_000  # funding records kept per market
MAX_DELTAS = 10_000  # book deltas kept per market, for resuming the book feed


# ---------------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Trade:
    ordinal: int  # the Fill's ordinal: a trade's id
    time: int  # sequenced time (ms) of the entry that made it
    market: bytes
    price: int
    size: int
    notional: int  # price * size / 10**size_decimals, exact (docs/engine.md)
    taker_side: int
    liquidation: bool


@dataclass(frozen=True, slots=True)
class Candle:
    start: int  # bucket start: time - time % interval
    open: int
    high: int
    low: int
    close: int
    volume: int  # contracts (base units of size)
    quote_volume: int  # notional, collateral base units
    trades: int


@dataclass(frozen=True, slots=True)
class DayStats:
    """The trades in the one-minute buckets that start after `time - 24 h` (at most 1440 buckets, the current
    one included). `open`, `high`, `low` are None when there was no trade in the window."""

    time: int
    open: int | None
    high: int | None
    low: int | None
    last: int | None  # the last trade's price, whenever it was
    volume: int
    quote_volume: int
    trades: int


@dataclass(frozen=True, slots=True)
class FundingRecord:
    ordinal: int
    time: int
    market: bytes
    per_unit: int  # funding per whole contract per interval; > 0: longs pay shorts
    intervals: int
    paid: int
    received: int


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One position's share of a `FundingPaid`: `amount` is its collateral change (< 0: it paid)."""

    ordinal: int  # the FundingPaid's ordinal
    time: int
    trader: bytes
    strategy: bytes
    market: bytes
    size: int  # the position (signed) it was paid on
    per_unit: int
    intervals: int
    amount: int


@dataclass(frozen=True, slots=True)
class L2Book:
    market: bytes
    seq: int
    bids: list[tuple[int, int]]  # (price, aggregate size), best (highest) first
    asks: list[tuple[int, int]]  # best (lowest) first
    checksum: int


@dataclass(frozen=True, slots=True)
class BookDelta:
    """The levels one entry changed in one market: (price, new aggregate size), 0 = the level is gone."""

    market: bytes
    prev_seq: int
    seq: int
    bids: tuple[tuple[int, int], ...]  # best first
    asks: tuple[tuple[int, int], ...]
    checksum: int  # of the book after the delta


@dataclass(frozen=True, slots=True)
class RestingOrder:
    """A seed for `MarketData.restart`: an order resting in the engine's book."""

    order_id: bytes
    market: bytes
    side: int
    price: int
    remaining: int


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A seed for `MarketData.restart`: a non-zero position."""

    trader: bytes
    strategy: bytes
    market: bytes
    size: int


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    deltas: list[BookDelta]
    payments: list[FundingPayment]


# ---------------------------------------------------------------------------------------------- state


class _Bucket:
    __slots__ = ("start", "open", "high", "low", "close", "volume", "quote_volume", "trades")

    def __init__(self, start: int, price: int) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = price
        self.volume = self.quote_volume = self.trades = 0

    def add(self, price: int, size: int, notional: int) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.quote_volume += notional
        self.trades += 1

    def frozen(self) -> Candle:
        return Candle(self.start, self.open, self.high, self.low, self.close, self.volume, self.quote_volume, self.trades)


class _Market:
    __slots__ = ("id", "trades", "candles", "funding", "levels", "prices", "seq", "deltas", "positions", "last_price")

    def __init__(self, market: bytes, seq: int) -> None:
        self.id = market
        self.trades: deque[Trade] = deque(maxlen=MAX_TRADES)
        self.candles: dict[int, deque[_Bucket]] = {iv: deque(maxlen=MAX_CANDLES) for iv in INTERVALS.values()}
        self.funding: deque[FundingRecord] = deque(maxlen=MAX_FUNDING)
        self.levels: tuple[dict[int, int], dict[int, int]] = ({}, {})  # [BUY] bids, [SELL] asks: price -> size
        self.prices: tuple[list[int], list[int]] = ([], [])  # ascending, per side
        self.seq = seq
        self.deltas: deque[BookDelta] = deque(maxlen=MAX_DELTAS)
        self.positions: dict[tuple[bytes, bytes], int] = {}  # (trader, strategy) -> signed size
        self.last_price: int | None = None

    def top(self, side: int, depth: int) -> list[tuple[int, int]]:
        prices = self.prices[side]
        levels = self.levels[side]
        chosen = prices[::-1][:depth] if side == BUY else prices[:depth]
        return [(p, levels[p]) for p in chosen]

    def checksum(self) -> int:
        return book_checksum(self.top(BUY, CHECKSUM_DEPTH), self.top(1 - BUY, CHECKSUM_DEPTH))

    def change_level(self, side: int, price: int, by: int) -> None:
        levels = self.levels[side]
        size = levels.get(price, 0) + by
        if size:
            if price not in levels:
                insort(self.prices[side], price)
            levels[price] = size
        elif price in levels:
            del levels[price]
            prices = self.prices[side]
            del prices[bisect_left(prices, price)]


class MarketData:
    """Fed `apply(updates)` once per applied entry, in order. `unit_of(market)` is 10**size_decimals of a listed
    market (fixed at listing), used for notionals and funding payments."""

    def __init__(self, unit_of: Callable[[bytes], int | None]) -> None:
        self.unit_of = unit_of
        self.time = 0
        self.last_ordinal = 0
        self.base_seq = 0  # the sequence number of a book nothing has changed since the last restart
        self._markets: dict[bytes, _Market] = {}
        self._orders: dict[bytes, list] = {}  # resting order id -> [market, side, price, remaining]
        self._units: dict[bytes, int] = {}

    def _market(self, market: bytes) -> _Market:
        m = self._markets.get(market)
        if m is None:
            m = self._markets[market] = _Market(market, self.base_seq)
        return m

    def _unit(self, market: bytes) -> int:
        one = self._units.get(market)
        if one is None:
            one = self.unit_of(market) or 1
            self._units[market] = one
        return one

    # ------------------------------------------------------------ feeding

    def restart(self, ordinal: int, time: int, orders: Iterable[RestingOrder], positions: Iterable[HeldPosition]) -> None:
        """The state jumped to a snapshot at `ordinal`: books and positions are re-seeded from the engine's state
        there; trades, candles and funding records start empty (`replay_series` refills them from history)."""
        self._markets = {}
        self._orders = {}
        self.base_seq = ordinal
        self.last_ordinal = ordinal
        self.time = time
        for o in orders:
            self._orders[o.order_id] = [o.market, o.side, o.price, o.remaining]
            self._market(o.market).change_level(o.side, o.price, o.remaining)
        for p in positions:
            if p.size:
                self._market(p.market).positions[(p.trader, p.strategy)] = p.size

    def replay_series(self, updates: Iterable[Update], from_genesis: bool = False) -> None:
        """Refill trades, candles and funding records from older updates (history, in ordinal order, all at or
        below the restart ordinal): books and positions are left as seeded. Unless the updates start at genesis
        (time 0), a fill or funding before their first TimeAdvanced has no known time and is skipped."""
        now = self.time
        self.time = 0
        known = from_genesis
        for u in updates:
            kind = type(u)
            if kind is TimeAdvanced:
                self.time = u.time_ms
                known = True
            elif not known:
                continue
            elif kind is Fill:
                self._trade(u)
            elif kind is FundingPaid:
                self._market(u.market).funding.append(
                    FundingRecord(u.ordinal, self.time, u.market, u.per_unit, u.intervals, u.paid, u.received)
                )
        self.time = now

    def apply(self, updates: Iterable[Update]) -> EntryOutcome:
        """One applied entry's updates, in order: the book deltas it caused (one per market whose levels
        changed) and the funding payments of its `FundingPaid` updates."""
        touched: dict[bytes, dict[tuple[int, int], int]] = {}  # market -> {(side, price): size before the entry}
        last_touch: dict[bytes, int] = {}
        payments: list[FundingPayment] = []
        for u in updates:
            self.last_ordinal = u.ordinal
            kind = type(u)
            if kind is OrderUpdate:
                self._order(u, touched, last_touch)
            elif kind is Fill:
                self._trade(u)
            elif kind is PositionUpdate:
                positions = self._market(u.market).positions
                if u.size:
                    positions[(u.trader, u.strategy)] = u.size
                else:
                    positions.pop((u.trader, u.strategy), None)
            elif kind is TimeAdvanced:
                self.time = u.time_ms
            elif kind is FundingPaid:
                payments.extend(self._funding(u))
        deltas = []
        for market, before in touched.items():
            m = self._markets[market]
            changed = [(side, price, m.levels[side].get(price, 0)) for (side, price), size in before.items()
                       if m.levels[side].get(price, 0) != size]
            if not changed:
                continue
            bids = tuple(sorted(((p, s) for side, p, s in changed if side == BUY), reverse=True))
            asks = tuple(sorted((p, s) for side, p, s in changed if side != BUY))
            delta = BookDelta(market, m.seq, last_touch[market], bids, asks, m.checksum())
            m.seq = delta.seq
            m.deltas.append(delta)
            deltas.append(delta)
        return EntryOutcome(deltas, payments)

    def _order(self, u: OrderUpdate, touched: dict, last_touch: dict) -> None:
        known = self._orders.get(u.order_id)
        if known is None:
            if u.status != OPEN or not u.remaining:
                return  # a taker that never rested
            known = self._orders[u.order_id] = [u.market, u.side, u.price, 0]
        market, side, price, before = known
        if u.remaining == before:
            return
        m = self._market(market)
        seen = touched.setdefault(market, {})
        if (side, price) not in seen:
            seen[(side, price)] = m.levels[side].get(price, 0)
        m.change_level(side, price, u.remaining - before)
        last_touch[market] = u.ordinal
        if u.remaining:
            known[3] = u.remaining
        else:
            del self._orders[u.order_id]

    def _trade(self, u: Fill) -> None:
        m = self._market(u.market)
        notional = u.price * u.size // self._unit(u.market)
        t = self.time
        m.trades.append(Trade(u.ordinal, t, u.market, u.price, u.size, notional, u.taker_side, u.liquidation))
        m.last_price = u.price
        for interval, buckets in m.candles.items():
            start = t - t % interval
            if not buckets or buckets[-1].start != start:
                buckets.append(_Bucket(start, u.price))
            buckets[-1].add(u.price, u.size, notional)

    def _funding(self, u: FundingPaid) -> list[FundingPayment]:
        m = self._market(u.market)
        m.funding.append(FundingRecord(u.ordinal, self.time, u.market, u.per_unit, u.intervals, u.paid, u.received))
        if not u.per_unit:
            return []
        one = self._unit(u.market)
        out = []
        for (trader, strategy), size in sorted(m.positions.items()):
            amount = funding_transfer(size, u.per_unit, u.intervals, one)
            out.append(FundingPayment(u.ordinal, self.time, trader, strategy, u.market, size, u.per_unit, u.intervals, amount))
        return out

    # ------------------------------------------------------------ reading

    def trades(self, market: bytes, limit: int = 100) -> list[Trade]:
        """The latest trades, newest first."""
        m = self._markets.get(market)
        if m is None:
            return []
        out = []
        for t in reversed(m.trades):
            if len(out) >= limit:
                break
            out.append(t)
        return out

    def candles(self, market: bytes, interval: str, start: int | None = None, end: int | None = None,
                limit: int = 500) -> list[Candle]:
        """Candles of buckets with a trade, oldest first: from `start` (the first `limit` with start >= it), else
        the last `limit`; `end` bounds the bucket start (inclusive)."""
        m = self._markets.get(market)
        if m is None:
            return []
        buckets = [b for b in m.candles[INTERVALS[interval]]
                   if (start is None or b.start >= start) and (end is None or b.start <= end)]
        chosen = buckets[:limit] if start is not None else buckets[-limit:] if limit else []
        return [b.frozen() for b in chosen]

    def day_stats(self, market: bytes) -> DayStats:
        m = self._markets.get(market)
        now = self.time
        if m is None:
            return DayStats(now, None, None, None, None, 0, 0, 0)
        window = []
        for b in reversed(m.candles[INTERVALS["1m"]]):
            if b.start <= now - DAY_MS:
                break
            window.append(b)
        window.reverse()
        if not window:
            return DayStats(now, None, None, None, m.last_price, 0, 0, 0)
        return DayStats(
            now, window[0].open, max(b.high for b in window), min(b.low for b in window), m.last_price,
            sum(b.volume for b in window), sum(b.quote_volume for b in window), sum(b.trades for b in window),
        )

    def funding_history(self, market: bytes, start: int | None = None, end: int | None = None,
                        limit: int = 100) -> list[FundingRecord]:
        """Funding records oldest first, by sequenced time: as `candles` selects."""
        m = self._markets.get(market)
        if m is None:
            return []
        records = [f for f in m.funding if (start is None or f.time >= start) and (end is None or f.time <= end)]
        return records[:limit] if start is not None else records[-limit:] if limit else []

    def last_funding(self, market: bytes) -> FundingRecord | None:
        m = self._markets.get(market)
        return m.funding[-1] if m is not None and m.funding else None

    def book(self, market: bytes, depth: int = 100) -> L2Book:
        m = self._markets.get(market)
        if m is None:
            return L2Book(market, self.base_seq, [], [], book_checksum((), ()))
        return L2Book(market, m.seq, m.top(BUY, depth), m.top(1 - BUY, depth), m.checksum())

    def best(self, market: bytes) -> tuple[int | None, int | None]:
        """(best bid, best ask) prices, None for an empty side."""
        m = self._markets.get(market)
        if m is None:
            return None, None
        bids, asks = m.prices
        return (bids[-1] if bids else None), (asks[0] if asks else None)

    def deltas_after(self, market: bytes, seq: int) -> list[BookDelta] | None:
        """Every delta of `market` after sequence number `seq`, chained from it; None when they are no longer
        held (or `seq` is not a sequence number this book had): take a snapshot instead."""
        m = self._markets.get(market)
        current = m.seq if m is not None else self.base_seq
        if seq == current:
            return []
        if m is None or seq > current:
            return None
        out = [d for d in m.deltas if d.seq > seq]
        if not out or out[0].prev_seq != seq:
            return None
        return out
