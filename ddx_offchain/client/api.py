"""The trader's network side: submit signed requests, verify receipts, read history and state, stream updates.

Receipts are verified before they are returned: the signature must recover (low s) to one of the operators the
client trusts (the operator set recorded on-chain), and the receipt must name this request's hash, sender and
nonce. Retries reuse the same signed request, so a retry can never execute twice (docs/protocol.md §7.4).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from decimal import Decimal

import aiohttp

from ..errors import DdxError
from ..protocol.eip712 import Domain, DomainCache, parse_address
from ..protocol.errors import ProtocolError
from ..protocol.items import balance_key, balance_value, value_hash, withdrawal_key, withdrawal_value
from ..protocol.names import id32_of
from ..protocol.proof import InclusionProof, NonInclusionProof, verify_inclusion, verify_non_inclusion
from ..protocol.requests import OrderType, SignedReceipt, SignedRequest, verify_receipt
from .market import (
    Account,
    BookOutOfSync,
    Candle,
    FundingPayment,
    FundingRate,
    L2Book,
    LocalBook,
    MarketSummary,
    OrderEvent,
    OwnFill,
    Page,
    PublicTrade,
    Ticker,
    Withdrawable,
    convert,
)
from .signer import MAIN, Trader
from .units import MarketSpec

RETRYABLE = {"outcome_unknown", "not_sequenced", "no_leader", "overloaded"}


class RequestRefused(DdxError):
    """The node refused the request (4xx/5xx with a reason) or the retries ran out."""

    def __init__(self, status: int, reason: str, detail: str, body: dict | None = None) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.body = body or {}


class BadReceipt(DdxError):
    """The node answered with a receipt that does not verify: do not trust that node."""


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    receipt: SignedReceipt
    operator: bytes
    raw: dict

    @property
    def request_index(self) -> int:
        return self.receipt.receipt.request_index

    @property
    def epoch(self) -> int:
        return self.receipt.receipt.epoch

    @property
    def sender(self) -> bytes:
        """Who signed the request: its trader, or the trader's agent (whose nonce it used)."""
        return self.receipt.receipt.sender


class DdxClient:
    """Talks to one or more operators' APIs (`urls`); requests fail over between them."""

    def __init__(
        self,
        urls: str | Iterable[str],
        domain: Domain,
        operators: Iterable[bytes],
        *,
        retries: int = 10,
        token_decimals: dict[bytes, int] | None = None,
    ) -> None:
        """`token_decimals`: the collateral tokens' decimals, for human units when a node does not serve them."""
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.token_decimals = dict(token_decimals or {})
        self._specs: dict[bytes, MarketSpec] = {}
        self.domain = domain
        self._domain = DomainCache(domain)
        self.operators = frozenset(operators)
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_manifest(cls, urls: str | Iterable[str], manifest_path: str, **options) -> "DdxClient":
        """Domain (chain id, exchange) and trusted operator set from a deployment manifest (ddx_offchain.chain)."""
        from ..deployment.manifest import load_manifest
        from ..protocol.eip712 import parse_address

        manifest = load_manifest(manifest_path)
        operators = {parse_address(a.lower()) for a in manifest.operators}
        decimals = {parse_address(c.token.lower()): c.decimals for c in manifest.collateral}
        options.setdefault("token_decimals", decimals)
        return cls(urls, Domain.of(manifest.chain_id, manifest.exchange.lower()), operators, **options)

    async def __aenter__(self) -> "DdxClient":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self._session

    # ------------------------------------------------------------ requests

    def verify(self, signed: SignedRequest, doc: dict) -> VerifiedReceipt:
        try:
            receipt = SignedReceipt.from_json(doc)
            operator = verify_receipt(receipt, self._domain, self.operators)
        except ProtocolError as exc:
            raise BadReceipt(str(exc)) from None
        r = receipt.receipt
        if (r.request_hash, r.sender, r.nonce) != (signed.request_hash, signed.signer, signed.request.nonce):
            raise BadReceipt("the receipt is for another request")
        return VerifiedReceipt(receipt, operator, doc)

    async def submit(self, signed: SignedRequest) -> VerifiedReceipt:
        """Submit until a verified receipt, a definite refusal, or the retries run out (same bytes every time)."""
        body = json.dumps(signed.to_json()).encode()
        last: RequestRefused | None = None
        url_index = 0
        for attempt in range(self.retries):
            url = self.urls[url_index % len(self.urls)]
            try:
                async with self.session.post(f"{url.rstrip('/')}/v1/requests", data=body, headers={"Content-Type": "application/json"}) as resp:
                    doc = await resp.json(content_type=None)
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
                last = RequestRefused(0, "unreachable", f"{url}: {exc!r}")
                url_index += 1
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
                continue
            if status == 200:
                return self.verify(signed, doc)
            reason = doc.get("error", "unknown") if isinstance(doc, dict) else "unknown"
            last = RequestRefused(status, reason, doc.get("detail", "") if isinstance(doc, dict) else "", doc if isinstance(doc, dict) else None)
            if reason == "not_leader" and doc.get("leader"):
                if doc["leader"] not in self.urls:
                    self.urls.append(doc["leader"])
                url_index = self.urls.index(doc["leader"])
                continue
            if reason not in RETRYABLE:
                raise last
            if reason == "no_leader":
                url_index += 1
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        assert last is not None
        raise last

    def request_channel(self, url: str | None = None) -> "RequestChannel":
        """A WebSocket for submitting many requests without an HTTP exchange each (`async with`)."""
        return RequestChannel(self, url or self.urls[0])

    # ------------------------------------------------------------ reads

    async def _get(self, path: str, params: dict | None = None) -> dict:
        last: Exception | None = None
        for url in self.urls:
            try:
                async with self.session.get(f"{url.rstrip('/')}{path}", params=params) as resp:
                    doc = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise RequestRefused(resp.status, doc.get("error", "unknown"), doc.get("detail", ""), doc)
                    return doc
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = exc
        raise RequestRefused(0, "unreachable", repr(last))

    async def receipt(self, signed: SignedRequest) -> VerifiedReceipt:
        return self.verify(signed, await self._get(f"/v1/receipts/0x{signed.request_hash.hex()}"))

    async def request_log(self, first: int, last: int) -> list[dict]:
        return (await self._get("/v1/requests", {"from": first, "to": last}))["entries"]

    async def updates(self, after: int = 0, limit: int = 100, *, channel: str = "all", key: str | None = None) -> list[dict]:
        """`key`: the trader's address, or the market's id or symbol."""
        params = {"after": after, "limit": limit, "channel": channel} | ({"key": key} if key else {})
        return (await self._get("/v1/updates", params))["updates"]

    async def book(self, market: bytes | str) -> dict:
        """The aggregated book; `market` is its bytes32 id (bytes or 0x-hex) or its symbol ("ETHP")."""
        return await self._get(f"/v1/books/0x{id32_of(market).hex()}")

    async def market(self, market: bytes | str) -> dict:
        """The market's parameters and live state (index, mark, funding); `market` is its id or its symbol."""
        return await self._get(f"/v1/markets/0x{id32_of(market).hex()}")

    async def open_order(self, order_hash: bytes | None = None, *, trader: bytes | None = None,
                         strategy: bytes | str = MAIN, client_order_id: bytes | str | None = None) -> dict:
        """An open order by its id, or by the trader's client order id (bytes32, or a name up to 32 bytes) in a
        strategy; raises RequestRefused (404 not_found) when none is open."""
        if order_hash is not None:
            return await self._get(f"/v1/orders/0x{order_hash.hex()}")
        if trader is None or client_order_id is None:
            raise ValueError("give an order hash, or a trader and a client order id")
        return await self._get("/v1/orders", {
            "trader": "0x" + trader.hex(), "strategy": "0x" + id32_of(strategy).hex(),
            "clientOrderId": "0x" + id32_of(client_order_id).hex(),
        })

    # ------------------------------------------------------------ human units (client/units.py)

    async def market_spec(self, market: bytes | str) -> MarketSpec:
        """What converting decimal prices and sizes needs (tick, lot, decimals): fetched once per market (a
        market's token, tick, lot and size decimals never change)."""
        market_id = id32_of(market)
        spec = self._specs.get(market_id)
        if spec is None:
            doc = await self.market(market_id)
            token = parse_address_or_none(doc.get("token"))
            spec = self._specs[market_id] = MarketSpec.from_doc(doc, self.token_decimals.get(token))
        return spec

    async def place_order(
        self,
        trader: Trader,
        market: bytes | str,
        side: int,
        size: Decimal | str,
        price: Decimal | str | None = None,
        *,
        order_type: int = OrderType.LIMIT,
        round: bool = False,
        reduce_only: bool = False,
        strategy: bytes | str = MAIN,
    ) -> VerifiedReceipt:
        """Sign and submit an order given in human units (`price` None for a market order); UnitError, before
        anything is signed, for a float, a value off the tick or lot grid (unless `round`), or a non-positive one."""
        spec = await self.market_spec(market)
        units = spec.size_units(size, round=round)
        price_units = 0 if price is None else spec.price_units(price, side=side, round=round)
        signed = trader.place_order(spec.market, side, units, price_units, order_type=order_type,
                                    reduce_only=reduce_only, strategy=strategy)
        return await self.submit(signed)

    async def modify_order(
        self,
        trader: Trader,
        market: bytes | str,
        order_hash: bytes,
        price: Decimal | str,
        size: Decimal | str,
        *,
        side: int | None = None,
        round: bool = False,
        strategy: bytes | str = MAIN,
    ) -> VerifiedReceipt:
        """Modify an order in human units; rounding the price needs the order's `side`."""
        spec = await self.market_spec(market)
        signed = trader.modify(spec.market, order_hash, spec.price_units(price, side=side, round=round),
                               spec.size_units(size, round=round), strategy=strategy)
        return await self.submit(signed)

    async def trader_state(self, trader: bytes) -> dict:
        return await self._get(f"/v1/traders/0x{trader.hex()}")

    async def status(self) -> dict:
        return await self._get("/v1/status")

    async def proof_document(self, kind: str, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        """GET /v1/proofs/{withdrawal|balance}/… as the node answers it, unchecked (the settlement service makes a
        LeafProof of it, which checks it): for `epoch`, by default the last one recorded on-chain."""
        if kind not in ("withdrawal", "balance"):
            raise ValueError(f"no {kind} proofs: withdrawal or balance")
        return await self._get(f"/v1/proofs/{kind}/0x{trader.hex()}/0x{token.hex()}" + ("" if epoch is None else f"?epoch={epoch}"))

    async def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        """The proof document, after checking that it proves this (trader, token) leaf with the stated cumulative
        amount (or its absence) against the root it names: for `epoch`, by default the last one recorded on-chain.
        Compare the root with the contract's before claiming."""
        doc = await self.proof_document("withdrawal", trader, token, epoch)
        self._check_leaf(doc, withdrawal_key(trader, token), lambda: withdrawal_value(trader, token, int(doc["cumulative"])), "withdrawal")
        return doc

    async def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        """The BALANCE leaf (`amount`, `deposited`) the escape hatch pays from, or its absence, checked against the
        root the document names, like `withdrawal_proof`."""
        doc = await self.proof_document("balance", trader, token, epoch)
        self._check_leaf(doc, balance_key(trader, token), lambda: balance_value(trader, token, int(doc["amount"]), int(doc["deposited"])), "balance")
        return doc

    @staticmethod
    def _check_leaf(doc: dict, key: bytes, expected_value, kind: str) -> None:
        try:
            root = bytes.fromhex(doc["root"][2:])
            if doc["included"]:
                proof = InclusionProof.from_json(doc["proof"])
                ok = proof.key == key and proof.value_hash == value_hash(expected_value()) and verify_inclusion(root, proof)
            else:
                proof = NonInclusionProof.from_json(doc["proof"])
                ok = proof.key == key and verify_non_inclusion(root, proof)
        except (ProtocolError, KeyError, ValueError, TypeError) as exc:
            raise BadReceipt(f"malformed {kind} proof: {exc}") from None
        if not ok:
            raise BadReceipt(f"the {kind} proof does not fold to the root the node names")

    # ------------------------------------------------------------ market data and account history (docs/api.md)

    @staticmethod
    def _market_path(market: bytes | str) -> str:
        """A market by id (bytes32) or readable name ("ETHP"), as the API's path segment."""
        market_id = market if isinstance(market, bytes) else market.encode().ljust(32, b"\0")
        return "0x" + market_id.hex()

    @staticmethod
    def _query(**params: object) -> dict:
        return {k: str(v) for k, v in params.items() if v is not None}

    async def markets(self) -> list[MarketSummary]:
        """Every listed market's specs and live state (ccxt fetchMarkets)."""
        return [convert(m, MarketSummary) for m in (await self._get("/v1/markets"))["markets"]]

    async def tickers(self) -> list[Ticker]:
        return [convert(t, Ticker) for t in (await self._get("/v1/tickers"))["tickers"]]

    async def ticker(self, market: bytes | str) -> Ticker:
        return convert(await self._get(f"/v1/tickers/{self._market_path(market)}"), Ticker)

    async def trades(self, market: bytes | str, limit: int = 100) -> list[PublicTrade]:
        """Recent trades, newest first."""
        doc = await self._get(f"/v1/markets/{self._market_path(market)}/trades", self._query(limit=limit))
        return [convert(t, PublicTrade) for t in doc["trades"]]

    async def candles(self, market: bytes | str, interval: str = "1m", *, start: int | None = None, end: int | None = None,
                      limit: int = 500) -> list[Candle]:
        """OHLCV candles, oldest first: from `start` (sequenced ms), else the latest `limit`."""
        params = self._query(interval=interval, start=start, end=end, limit=limit)
        doc = await self._get(f"/v1/markets/{self._market_path(market)}/candles", params)
        return [convert(c, Candle) for c in doc["candles"]]

    async def funding_history(self, market: bytes | str, *, start: int | None = None, end: int | None = None,
                              limit: int = 100) -> list[FundingRate]:
        doc = await self._get(f"/v1/markets/{self._market_path(market)}/funding", self._query(start=start, end=end, limit=limit))
        return [convert(f, FundingRate) for f in doc["funding"]]

    async def order_book(self, market: bytes | str, depth: int = 100) -> L2Book:
        """The L2 snapshot with its sequence number and checksum (verified here)."""
        doc = await self._get(f"/v1/markets/{self._market_path(market)}/book", self._query(depth=depth))
        LocalBook(doc)  # raises BookOutOfSync if the levels do not match the checksum
        return convert(doc, L2Book)

    async def account(self, trader: bytes) -> Account:
        """Per strategy account: equity, unrealized PnL, margins, available margin, free collateral, positions with
        liquidation prices (ccxt fetchBalance, fetchPositions)."""
        return convert(await self._get(f"/v1/traders/0x{trader.hex()}/account"), Account)

    async def withdrawable(self, trader: bytes) -> list[Withdrawable]:
        """What the trader can claim on-chain per token (cumulative WITHDRAWAL leaves; formerly `balances`)."""
        doc = await self._get(f"/v1/traders/0x{trader.hex()}/withdrawable")
        return [convert(w, Withdrawable) for w in doc["withdrawable"]]

    async def _page(self, trader: bytes, what: str, cls: type, before: int | None, limit: int, **extra) -> Page:
        doc = await self._get(f"/v1/traders/0x{trader.hex()}/{what}", self._query(before=before, limit=limit, **extra))
        return Page([convert(i, cls) for i in doc["items"]], None if doc["next"] is None else int(doc["next"]))

    async def fills(self, trader: bytes, *, before: int | None = None, limit: int = 100) -> Page[OwnFill]:
        """The trader's fills, newest first (ccxt fetchMyTrades); page on with `before=page.next`."""
        return await self._page(trader, "fills", OwnFill, before, limit)

    async def order_history(self, trader: bytes, *, before: int | None = None, limit: int = 100,
                            status: str | None = None) -> Page[OrderEvent]:
        """The trader's order events (open, filled, cancelled with reason), newest first."""
        return await self._page(trader, "orders", OrderEvent, before, limit, status=status)

    async def funding_payments(self, trader: bytes, *, before: int | None = None, limit: int = 100) -> Page[FundingPayment]:
        return await self._page(trader, "funding", FundingPayment, before, limit)

    async def liquidations(self, trader: bytes, *, before: int | None = None, limit: int = 100) -> Page[dict]:
        """Liquidation, Takeover and Deleverage updates concerning the trader, as execution updates."""
        return await self._page(trader, "liquidations", dict, before, limit)

    async def book_stream(self, market: bytes | str, depth: int = 1000) -> AsyncIterator[L2Book]:
        """The L2 book of `market`, kept from the book feed: yields it after the snapshot and after every delta.
        A delta that does not chain on (gap) or a checksum mismatch re-syncs from a fresh snapshot; a dropped
        connection resumes from the last sequence number (on any node), or re-syncs if that is no longer held."""
        key = self._market_path(market)
        book: LocalBook | None = None

        def params() -> dict[str, str]:
            return {"channel": "book", "key": key, "depth": str(depth)} | ({} if book is None else {"from": str(book.seq)})

        def handle(doc: dict) -> L2Book | None:
            nonlocal book
            if doc["type"] == "book":
                book = LocalBook(doc)
            elif doc["type"] == "bookDelta" and book is not None:
                if int(doc["seq"]) <= book.seq:
                    return None
                try:
                    book.apply(doc)
                except BookOutOfSync:
                    book = None
                    raise _Reconnect(at_once=True) from None  # re-sync from a snapshot
            elif doc["type"] == "error":
                if doc["error"] == "resume_unavailable":
                    book = None
                raise _Reconnect(at_once=False)
            else:
                return None
            return book.snapshot()

        async for snapshot in self._follow(params, handle):
            yield snapshot

    # ------------------------------------------------------------ streams

    async def stream(self, channel: str = "all", key: str | None = None, after: int | None = None) -> AsyncIterator[dict]:
        """Yield the snapshot (unless resuming) then every update in ordinal order, reconnecting (to the next
        node if need be) and resuming from the last ordinal seen, so the sequence has no gaps and no repeats."""

        def params() -> dict[str, str]:
            return {"channel": channel} | ({"key": key} if key else {}) | ({} if after is None else {"from": str(after)})

        def handle(doc: dict) -> dict | None:
            nonlocal after
            if doc["type"] == "snapshot":
                after = int(doc["ordinal"])
            elif doc["type"] == "update":
                if after is not None and int(doc["ordinal"]) <= after:
                    return None
                after = int(doc["ordinal"])
            elif doc["type"] == "error":
                if doc["error"] != "slow_consumer":
                    raise RequestRefused(400, doc["error"], doc.get("detail", ""), doc)
                return None
            return doc

        async for doc in self._follow(params, handle):
            yield doc

    async def _follow(self, params, handle) -> AsyncIterator:
        """The one reconnect loop of the WebSocket feeds: connect to `/v1/ws` with `params()` (called at every
        connect, so a feed resumes from what its handler last saw), pass each JSON message to `handle` and yield
        what it returns (None: nothing). A dropped connection, or `_Reconnect` from the handler, connects again,
        to the next node after a failure, with exponential backoff (none for `_Reconnect(at_once=True)`); any
        other exception from the handler ends the feed."""
        attempt = 0
        while True:
            url = self.urls[attempt % len(self.urls)]
            try:
                async with self.session.ws_connect(f"{url.rstrip('/')}/v1/ws", params=params(), heartbeat=20) as ws:
                    attempt = 0
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        out = handle(json.loads(msg.data))
                        if out is not None:
                            yield out
            except _Reconnect as again:
                if again.at_once:
                    continue
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                pass
            attempt += 1
            await asyncio.sleep(min(0.05 * 2**min(attempt, 5), 1.0))


class _Reconnect(DdxError):
    """Raised by a feed's message handler to drop the connection and connect again (resuming per its params)."""

    def __init__(self, at_once: bool) -> None:
        super().__init__("reconnect")
        self.at_once = at_once


def parse_address_or_none(value: object) -> bytes | None:
    try:
        return parse_address(value) if isinstance(value, str) else None
    except ProtocolError:
        return None


@dataclass(frozen=True, slots=True)
class CancelOnDisconnect:
    """The operator's answer to arming (`status` "armed": the held request's hash and `time`, the `deadline` at
    which the operator submits it if no refresh came, its `margin_ms`) or disarming (`status` "disarmed")."""

    status: str
    request_hash: str | None = None
    time: int | None = None
    deadline: int | None = None
    margin_ms: int | None = None

    @classmethod
    def of(cls, doc: dict) -> "CancelOnDisconnect":
        def num(key: str) -> int | None:
            return int(doc[key]) if doc.get(key) is not None else None

        return cls(doc["status"], doc.get("requestHash"), num("time"), num("deadline"), num("marginMs"))


COD_OP = "cancelOnDisconnect"


class RequestChannel:
    """Submit over `/v1/ws/requests`; answers are paired with requests by id, so many can be in flight at once.
    Receipts are verified exactly as `DdxClient.submit` verifies them. No automatic retry: on `RequestRefused`
    with a retryable reason, submit the same signed request again (here or through `DdxClient.submit`).

    Cancel on disconnect (docs/api.md): `cancel_on_disconnect(signed ScheduleCancel | None)` arms, refreshes or
    disarms the operator's held request; `keep_cancel_on_disconnect(trader, grace_ms)` arms and refreshes it in the
    background. Leaving the channel (`async with` exit) closes it: an armed switch then fires, by design; call
    `stop_cancel_on_disconnect()` first to leave without cancelling. Lapses the operator reports (it submitted the
    held request because no refresh came in time) are kept in `lapses` (newest last)."""

    def __init__(self, client: DdxClient, url: str) -> None:
        self.client = client
        self.url = f"{url.rstrip('/')}/v1/ws/requests"
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._waiters: dict[str, asyncio.Future] = {}
        self._ids = 0
        self._refresher: asyncio.Task | None = None
        self.lapses: deque[dict] = deque(maxlen=100)
        self.refresh_error: RequestRefused | None = None  # the last refresh the operator refused (the refresher goes on)

    async def __aenter__(self) -> "RequestChannel":
        self._ws = await self.client.session.ws_connect(self.url, heartbeat=20)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stop_refresher()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                doc = json.loads(msg.data)
                tag = doc.get("id")
                if tag is None and COD_OP in doc:
                    self.lapses.append(doc[COD_OP])
                    continue
                waiter = self._waiters.pop(tag, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(doc)
        finally:
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(RequestRefused(0, "unreachable", "the request channel closed"))
            self._waiters.clear()

    async def _exchange(self, frame: dict) -> dict:
        assert self._ws is not None, "use `async with client.request_channel() as channel`"
        self._ids += 1
        tag = str(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[tag] = waiter
        try:
            await self._ws.send_str(json.dumps({"id": tag, **frame}))
        except (ConnectionError, RuntimeError) as exc:
            self._waiters.pop(tag, None)
            raise RequestRefused(0, "unreachable", f"the request channel closed: {exc}") from None
        return await waiter

    async def submit(self, signed: SignedRequest) -> VerifiedReceipt:
        doc = await self._exchange({"request": signed.to_json()})
        if "receipt" in doc:
            return self.client.verify(signed, doc["receipt"])
        raise RequestRefused(0, doc.get("error", "unknown"), doc.get("detail", ""), doc)

    async def cancel_on_disconnect(self, signed: SignedRequest | None) -> CancelOnDisconnect:
        """Hand the operator a signed ScheduleCancel (`Trader.schedule_cancel`) to hold and submit when this channel
        ends (refresh: the same trader, strategy and market with a later time), or None to drop the held one.
        Raises RequestRefused (the reason: `cod_not_later`, `cod_too_soon`, `cod_other_scope`, an admission reason);
        a refused refresh leaves the previous one held."""
        doc = await self._exchange({"op": COD_OP, "request": None if signed is None else signed.to_json()})
        if COD_OP in doc:
            return CancelOnDisconnect.of(doc[COD_OP])
        raise RequestRefused(0, doc.get("error", "unknown"), doc.get("detail", ""), doc)

    async def keep_cancel_on_disconnect(
        self,
        trader: Trader,
        grace_ms: int = 15_000,
        *,
        market: bytes | str | None = None,
        strategy: bytes | str | None = MAIN,
        every_s: float = 1.0,
    ) -> CancelOnDisconnect:
        """Arm with `time = now + grace_ms` (the trader's clock), then refresh every `every_s` in the background
        until `stop_cancel_on_disconnect` or the channel closes. If this process dies or the connection drops,
        the operator submits the last one: the orders of `strategy` in `market` (None: all) are cancelled at most
        about `grace_ms` later. `grace_ms` must exceed the operator's margin (5 s by default) plus `every_s`.
        The first arm's refusal raises; a later refused refresh is kept in `refresh_error` and the refresher goes
        on (the held request stays; if refreshes keep failing it lapses, which cancels: the safe side)."""
        await self._stop_refresher()

        def sign() -> SignedRequest:
            return trader.schedule_cancel(trader.now_ms() + grace_ms, market=market, strategy=strategy)

        armed = await self.cancel_on_disconnect(sign())
        self._refresher = asyncio.ensure_future(self._refresh(sign, every_s))
        return armed

    async def stop_cancel_on_disconnect(self, *, disarm: bool = True) -> CancelOnDisconnect | None:
        """Stop refreshing and (by default) drop the held request, so that closing the channel cancels nothing."""
        await self._stop_refresher()
        return await self.cancel_on_disconnect(None) if disarm else None

    async def _refresh(self, sign, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.cancel_on_disconnect(sign())
            except RequestRefused as exc:
                if exc.reason == "unreachable":
                    return
                self.refresh_error = exc

    async def _stop_refresher(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
