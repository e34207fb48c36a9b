"""Where index prices come from: Chainlink-style aggregators read through the chain RPC, and HTTP JSON tickers.

Each source answers `read()` with an integer price in the market's unit (quote-token base units per whole
contract: a USD price of 2,345.67 with a 6-decimal token is 2_345_670_000) and the time it was observed, or raises
`PriceSourceError`. Decimal values are converted exactly, by string, rounding toward zero: no float ever holds a
price. Presets name the public ticker formats of a few major exchanges; any other JSON ticker works with a URL and
a field path (docs/operations.md, "Index prices").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import aiohttp

from ..errors import DdxError
from ..node.wallclock import wall_clock_ms
from .core.prices import Observation

_DECIMAL = re.compile(r"^([0-9]+)(?:\.([0-9]+))?$")
MAX_TICKER_BYTES = 1 << 20


class PriceSourceError(DdxError):
    """A source gave no usable price this time (down, malformed, not positive)."""


def decimal_units(text: str, decimals: int) -> int:
    """The non-negative decimal string `text` times 10**decimals, rounded toward zero (exactly, no float)."""
    match = _DECIMAL.match(text.strip())
    if not match:
        raise PriceSourceError(f"not a non-negative decimal number: {text[:40]!r}")
    whole, fraction = match[1], (match[2] or "")
    fraction = fraction[:decimals].ljust(decimals, "0")
    return int(whole + fraction)


def scale(value: int, from_decimals: int, to_decimals: int) -> int:
    """An integer with `from_decimals` decimals re-expressed with `to_decimals`, rounded toward zero."""
    if to_decimals >= from_decimals:
        return value * 10 ** (to_decimals - from_decimals)
    return value // 10 ** (from_decimals - to_decimals)


def json_path(doc: object, path: str) -> object:
    """`a.b.0.c`: object members and list indexes; `*` takes an object's only member (Kraken keys by pair)."""
    for part in path.split("."):
        if isinstance(doc, dict):
            if part == "*":
                if len(doc) != 1:
                    raise PriceSourceError(f"'*' needs an object with one member, got {len(doc)}")
                doc = next(iter(doc.values()))
            elif part in doc:
                doc = doc[part]
            else:
                raise PriceSourceError(f"no member {part!r}")
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise PriceSourceError(f"cannot take {part!r} of {type(doc).__name__}")
    return doc


class PriceSource(Protocol):
    name: str

    async def read(self) -> Observation: ...


@dataclass(frozen=True, slots=True)
class TickerPreset:
    url: str  # with {symbol}
    path: str


# Public spot tickers (no key needed). `symbol` is the exchange's own pair name, e.g. ETHUSDT, ETH-USD, XETHZUSD.
PRESETS: dict[str, TickerPreset] = {
    "binance": TickerPreset("https://api.binance.com/api/v3/ticker/price?symbol={symbol}", "price"),
    "coinbase": TickerPreset("https://api.coinbase.com/v2/prices/{symbol}/spot", "data.amount"),
    "kraken": TickerPreset("https://api.kraken.com/0/public/Ticker?pair={symbol}", "result.*.c.0"),
    "okx": TickerPreset("https://www.okx.com/api/v5/market/ticker?instId={symbol}", "data.0.last"),
    "bybit": TickerPreset("https://api.bybit.com/v5/market/tickers?category=spot&symbol={symbol}", "result.list.0.lastPrice"),
}


def preset_url(preset: str, symbol: str, base_url: str = "") -> tuple[str, str]:
    """(url, path) of a preset; `base_url` replaces its scheme and host (a mirror, or a test server)."""
    if preset not in PRESETS:
        raise PriceSourceError(f"unknown preset {preset!r} (known: {', '.join(sorted(PRESETS))})")
    p = PRESETS[preset]
    url = p.url.format(symbol=symbol)
    if base_url:
        url = base_url.rstrip("/") + "/" + url.split("/", 3)[3]
    return url, p.path


class HttpJsonSource:
    """A JSON ticker over HTTP: `path` names the price field (a decimal string or a JSON number)."""

    def __init__(self, name: str, url: str, path: str, decimals: int, *, session: aiohttp.ClientSession,
                 timeout_s: float = 2.0, clock_ms=wall_clock_ms) -> None:
        self.name, self.url, self.path, self.decimals = name, url, path, decimals
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.clock_ms = clock_ms

    async def read(self) -> Observation:
        try:
            async with self.session.get(self.url, timeout=self.timeout) as resp:
                if resp.status != 200:
                    raise PriceSourceError(f"{self.name}: HTTP {resp.status}")
                body = b""
                async for chunk in resp.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > MAX_TICKER_BYTES:
                        raise PriceSourceError(f"{self.name}: answer larger than 1 MiB")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PriceSourceError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        try:
            # numbers stay exact: parse_float keeps the digits as written, not a binary float
            doc = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        except ValueError as exc:
            raise PriceSourceError(f"{self.name}: not JSON ({exc})") from None
        value = json_path(doc, self.path)
        if isinstance(value, Decimal):
            value = format(value, "f")
        if not isinstance(value, str):
            raise PriceSourceError(f"{self.name}: {self.path} is not a number")
        price = decimal_units(value, self.decimals)
        if price <= 0:
            raise PriceSourceError(f"{self.name}: price is not positive")
        return Observation(self.name, price, self.clock_ms())


# AggregatorV3Interface: the two calls a consumer needs.
AGGREGATOR_V3_ABI = [
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
                 {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
                 {"name": "answeredInRound", "type": "uint80"}]},
]


class ChainlinkSource:
    """A Chainlink-style `AggregatorV3Interface` feed read through the chain RPC. Its observation time is the
    round's `updatedAt` (the feed's own heartbeat decides freshness, as Chainlink's docs ask consumers to check)."""

    def __init__(self, name: str, w3, address: str, decimals: int) -> None:
        self.name, self.decimals = name, decimals
        self.contract = w3.eth.contract(address=w3.to_checksum_address(address), abi=AGGREGATOR_V3_ABI)
        self._feed_decimals: int | None = None

    async def read(self) -> Observation:
        try:
            if self._feed_decimals is None:
                self._feed_decimals = int(await self.contract.functions.decimals().call())
            round_id, answer, _, updated_at, answered_in = await self.contract.functions.latestRoundData().call()
        except Exception as exc:
            raise PriceSourceError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        if answer <= 0 or updated_at == 0 or answered_in < round_id:
            raise PriceSourceError(f"{self.name}: round {round_id} is incomplete or not positive")
        return Observation(self.name, scale(int(answer), self._feed_decimals, self.decimals), int(updated_at) * 1000)
