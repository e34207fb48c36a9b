"""Typed market data and account history as the SDK returns them (docs/api.md, "Market data"), and a local L2
book maintained from the book feed's deltas.

The API writes every integer as a decimal string (docs/protocol.md §7.0); these types hold them as Python ints
(`msgspec.convert(..., strict=False)` parses them), byte strings stay as the API writes them (`0x…`).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from ..errors import DdxError
from ..protocol.book_checksum import book_checksum

T = TypeVar("T")


class _Doc(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    pass


class MarketSummary(_Doc):
    market: str
    symbol: str | None
    token: str
    tick: int
    lot: int
    size_decimals: int
    initial_margin_bps: int
    maintenance_margin_bps: int
    maker_fee_bps: int
    taker_fee_bps: int
    liquidation_fee_bps: int
    funding_interval_ms: int
    max_order_notional: int
    active: bool
    index: int
    mark: int
    next_funding_ms: int
    last_funding_per_unit: int
    open_interest: int
    predicted_funding_per_unit: int = 0


class Ticker(_Doc):
    market: str
    symbol: str | None
    time: int  # sequenced time (ms) the 24 h window ends at
    index: int
    mark: int
    last: int | None
    best_bid: int | None
    best_ask: int | None
    open24h: int | None
    high24h: int | None
    low24h: int | None
    change24h: int | None
    volume24h: int
    quote_volume24h: int = msgspec.field(name="quoteVolume24h")
    trades24h: int
    open_interest: int
    funding_per_unit: int
    predicted_funding_per_unit: int
    next_funding_time: int
    funding_interval_ms: int


class PublicTrade(_Doc):
    id: int  # the fill's ordinal
    time: int
    price: int
    size: int
    notional: int
    taker_side: str
    liquidation: bool


class Candle(msgspec.Struct, array_like=True, frozen=True):
    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int


class FundingRate(_Doc):
    ordinal: int
    time: int
    per_unit: int
    intervals: int
    paid: int
    received: int


class L2Book(_Doc):
    market: str
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    checksum: int


class AccountPosition(_Doc):
    market: str
    side: str
    size: int
    cost: int
    entry_price: int
    mark: int
    notional: int
    unrealized_pnl: int
    realized_pnl: int
    initial_margin: int
    maintenance_margin: int
    liquidation_price: int | None


class StrategyAccount(_Doc):
    strategy: str
    token: str
    collateral: int
    unrealized_pnl: int
    equity: int
    initial_margin: int
    maintenance_margin: int
    available_margin: int
    free_collateral: int
    positions: list[AccountPosition]


class Account(_Doc):
    trader: str
    known: bool
    accounts: list[StrategyAccount]
    last_ordinal: int


class Withdrawable(_Doc):
    token: str
    withdrawable: int  # cumulative amount claimable on-chain once an epoch holding it is recorded


class OwnFill(_Doc):
    ordinal: int
    market: str
    strategy: str
    order_id: str
    role: str  # maker | taker
    side: str  # buy | sell
    price: int
    size: int
    fee: int
    liquidation: bool


class OrderEvent(_Doc):
    ordinal: int
    order_id: str
    strategy: str
    market: str
    side: str
    price: int
    remaining: int
    status: str  # open | filled | cancelled
    reason: int
    reason_name: str | None


class FundingPayment(_Doc):
    ordinal: int
    time: int
    strategy: str
    market: str
    size: int
    per_unit: int
    intervals: int
    amount: int  # the collateral change: < 0 paid


class Page(msgspec.Struct, Generic[T], frozen=True):
    items: list[T]
    next: int | None  # pass as `before` for the following page; None: no more


def convert(doc: object, cls: type[T]) -> T:
    return msgspec.convert(doc, cls, strict=False)


class BookOutOfSync(DdxError):
    """A delta does not chain onto the local book (`gap`) or the result fails the checksum (`checksum`)."""


class LocalBook:
    """An L2 book kept from a snapshot and the deltas after it (docs/api.md, "L2 book"): `apply` refuses a delta
    whose `prevSeq` is not the book's `seq` and verifies the checksum after each one."""

    def __init__(self, snapshot: dict) -> None:
        self.market = snapshot["market"]
        self.seq = int(snapshot["seq"])
        self.bids = {int(p): int(s) for p, s in snapshot["bids"]}
        self.asks = {int(p): int(s) for p, s in snapshot["asks"]}
        self._check(int(snapshot["checksum"]))

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())

    def checksum(self) -> int:
        bids, asks = self.top()
        return book_checksum(bids, asks)

    def _check(self, expected: int) -> None:
        if self.checksum() != expected:
            raise BookOutOfSync(f"checksum mismatch at seq {self.seq}", reason="checksum")

    def apply(self, delta: dict) -> None:
        if int(delta["prevSeq"]) != self.seq:
            raise BookOutOfSync(f"delta on {delta['prevSeq']} but the book is at {self.seq}", reason="gap")
        for side, levels in ((self.bids, delta["bids"]), (self.asks, delta["asks"])):
            for p, s in levels:
                if int(s):
                    side[int(p)] = int(s)
                else:
                    side.pop(int(p), None)
        self.seq = int(delta["seq"])
        self._check(int(delta["checksum"]))

    def snapshot(self) -> L2Book:
        bids, asks = self.top()
        return L2Book(market=self.market, seq=self.seq, bids=bids, asks=asks, checksum=self.checksum())
