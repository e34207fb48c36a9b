"""The index-price feed of one operator: polls its sources, sequences prices while it leads, and checks the prices
the log sequenced before it signs a checkpoint that contains them (rules in chain/core/prices.py).

Every operator polls its own sources every `poll_interval_s` and keeps a short series of its aggregates per
market. The leader proposes an `IndexPrices` command with every market whose clamped aggregate is due. Every
operator records each applied `IndexPrices` command in its `PriceLedger` with its own clock; `check_epoch(epoch)`
(called by the checkpointer) judges the unchecked ones against the series and returns the epoch's verdict.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from ..engine.commands import IndexPrice, IndexPrices, encode_command
from ..node.wallclock import wall_clock_ms
from ..protocol.hashing import keccak256
from .core.prices import (
    Aggregate,
    NoPrice,
    PriceCheck,
    PriceLedger,
    PriceRules,
    Verdict,
    aggregate,
    clamp,
    due,
    verify_price,
)
from .price_sources import ChainlinkSource, HttpJsonSource, PriceSource, PriceSourceError

log = logging.getLogger("ddx.chain.prices")

SERIES_LENGTH = 600  # own aggregates kept per market (10 minutes at one poll a second)
LIVE_LAG_ENTRIES = 256  # an entry applied further than this behind the commit index is "catching up"


@dataclass(frozen=True, slots=True)
class PriceSourceSettings:
    """One source of a market, as the operator config names it (daemon/config.py [prices])."""

    name: str
    kind: str  # "chainlink" or "http"
    address: str = ""  # chainlink
    url: str = ""  # http
    path: str = ""  # http


@dataclass(frozen=True, slots=True)
class PriceMarketSettings:
    market: bytes
    decimals: int
    sources: tuple[PriceSourceSettings, ...]


@dataclass(frozen=True, slots=True)
class PriceSettings:
    rules: PriceRules
    poll_interval_s: float
    markets: tuple[PriceMarketSettings, ...]


def build_price_feed(settings: PriceSettings, *, w3, session: aiohttp.ClientSession) -> "PriceFeed":
    """The feed of an operator config: Chainlink sources read through `w3` (the chain RPC), HTTP ones through
    `session` (the feed owns it: `close()` closes it)."""
    markets = []
    for m in settings.markets:
        sources: list[PriceSource] = []
        for src in m.sources:
            if src.kind == "chainlink":
                sources.append(ChainlinkSource(src.name, w3, src.address, m.decimals))
            else:
                sources.append(HttpJsonSource(src.name, src.url, src.path, m.decimals, session=session))
        markets.append(MarketFeed(m.market, sources))
    feed = PriceFeed(markets, settings.rules, poll_interval_s=settings.poll_interval_s)
    feed.session = session
    return feed


@dataclass
class MarketFeed:
    market: bytes
    sources: Sequence[PriceSource]
    series: deque = field(default_factory=lambda: deque(maxlen=SERIES_LENGTH))
    last_observations: dict = field(default_factory=dict)
    last_result: Aggregate | NoPrice | None = None
    source_errors: dict = field(default_factory=dict)


class PriceFeed:
    def __init__(
        self,
        markets: Sequence[MarketFeed],
        rules: PriceRules,
        *,
        poll_interval_s: float = 1.0,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.markets = {m.market: m for m in markets}
        self.rules = rules
        self.poll_interval_s = poll_interval_s
        self.clock_ms = clock_ms
        self.ledger = PriceLedger()
        self.proposed = 0
        self.polls = 0
        self.session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    # ---- sources (every operator) -------------------------------------------------------------------------

    async def poll_once(self) -> None:
        self.polls += 1
        for feed in self.markets.values():
            results = await asyncio.gather(*(s.read() for s in feed.sources), return_exceptions=True)
            for source, result in zip(feed.sources, results):
                if isinstance(result, BaseException):
                    if not isinstance(result, PriceSourceError):
                        result = PriceSourceError(f"{source.name}: {type(result).__name__}: {result}")
                    feed.source_errors[source.name] = feed.source_errors.get(source.name, 0) + 1
                    log.debug("price source %s: %s", source.name, result)
                else:
                    feed.last_observations[source.name] = result
            now = self.clock_ms()
            feed.last_result = aggregate(feed.last_observations.values(), now, self.rules)
            if isinstance(feed.last_result, Aggregate):
                # the series is stamped with this operator's clock: verification compares moments of its own
                feed.series.append(Aggregate(feed.last_result.price, now, feed.last_result.used, feed.last_result.dropped))

    # ---- the leader ---------------------------------------------------------------------------------------

    def proposal(self) -> IndexPrices | None:
        """The IndexPrices command the leader should sequence now, or None (nothing due, or no price)."""
        now = self.clock_ms()
        prices = []
        for market, feed in sorted(self.markets.items()):
            if not isinstance(feed.last_result, Aggregate):
                continue
            last = self.ledger.last(market)
            candidate = clamp(feed.last_result.price, last, self.rules.max_change_bps)
            if due(candidate, last, self.ledger.last_at(market), now, self.rules):
                prices.append(IndexPrice(market, candidate))
        if not prices:
            return None
        request_id = keccak256(b"ddx index prices" + now.to_bytes(8, "big") + self.proposed.to_bytes(8, "big"))
        return IndexPrices(request_id, tuple(prices))

    async def lead_once(self, propose: Callable[[bytes], object]) -> None:
        command = self.proposal()
        if command is None:
            return
        try:
            await propose(encode_command(command))
            self.proposed += 1
        except Exception as exc:
            log.warning("index prices not sequenced: %s", exc)

    # ---- every operator: what the log sequenced -------------------------------------------------------------

    def applied(self, command: IndexPrices, epoch: int, log_index: int, commit_index: int) -> None:
        """An accepted IndexPrices command, applied in engine epoch `epoch` at Raft index `log_index`."""
        now = self.clock_ms()
        live = self.polls > 0 and commit_index - log_index <= LIVE_LAG_ENTRIES
        for ip in command.prices:
            self.ledger.record(epoch, ip.market, ip.price, now, live)

    def check_epoch(self, epoch: int) -> PriceCheck | None:
        """None when every price in the state frozen as `epoch` is confirmed (or could not be checked here);
        else the first mismatch or the first price still pending."""
        now = self.clock_ms()
        for p in self.ledger.unchecked():
            if p.epoch >= epoch:
                break
            feed = self.markets.get(p.market)
            if feed is None:
                check = PriceCheck(Verdict.UNVERIFIED, f"market 0x{p.market.rstrip(bytes(1)).hex()} has no sources here")
            else:
                check = verify_price(p, list(feed.series), now, self.rules)
            self.ledger.set_result(p, check)
            if check.verdict is Verdict.MISMATCH:
                log.error("sequenced index price contradicts this operator's sources: %s", check.reason)
        return self.ledger.verdict_for_epoch(epoch)

    def status(self) -> dict:
        markets = {}
        for market, feed in sorted(self.markets.items()):
            result = feed.last_result
            markets[market.rstrip(b"\0").decode(errors="replace")] = {
                "price": result.price if isinstance(result, Aggregate) else None,
                "sources": list(result.used) if isinstance(result, Aggregate) else [],
                "outliers": list(result.dropped) if isinstance(result, Aggregate) else [],
                "noPrice": result.reason if isinstance(result, NoPrice) else None,
                "sequenced": self.ledger.last(market),
                "sourceErrors": dict(feed.source_errors),
            }
        return {
            "markets": markets,
            "proposed": self.proposed,
            "unverified": self.ledger.unverified,
            "mismatches": [m.reason for m in self.ledger.mismatches()],
        }
