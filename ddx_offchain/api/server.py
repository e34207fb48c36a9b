"""The HTTP + WebSocket API of one operator (aiohttp). Routes and payloads: docs/api.md, api/openapi.json.

Every error is JSON `{"error": <reason>, "detail": …}` with a 4xx status for anything the client can fix (the
reason -> status table is api/errors.py); an unexpected exception answers 500 `{"error": "internal"}` and is
logged, never leaked. Request bodies are bounded once, here (aiohttp's client_max_size; the WebSocket frame size),
and decoded once; JSON is rendered by api/render.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from ..errors import DdxError
from ..node.admission import MAX_BODY_BYTES
from ..node.book_feed import BookHub
from ..node.disconnect_cancel import MARGIN_MS, DisconnectCancels
from ..node.feeds import FeedHub, ResumeUnavailable
from ..node.history import History
from ..node.market_data import INTERVALS, MarketData
from ..node.node_metrics import CONTENT_TYPE, NodeMetrics
from ..node.rate_limits import RateLimiter
from ..node.service import OperatorService, ReceiptRecord
from ..node.views import ExchangeView
from ..protocol.eip712 import checksum_address, from_json
from ..protocol.errors import ProtocolError
from ..protocol.names import id32_of
from . import render
from .errors import ApiError, error_body, error_headers, http_status
from .ws_requests import RequestChannels

log = logging.getLogger("ddx.api")

MAX_RANGE = 1000  # request-log entries or updates per page
MAX_SUBSCRIBERS = 10_000  # open WebSocket feeds per node
UNLIMITED_READS = frozenset({"/livez", "/readyz", "/metrics"})  # probes and scrapes: no read rate limit
MAX_BOOK_DEPTH = 1000  # levels per side in an L2 snapshot
TRADER_HISTORY_KINDS = {
    "fills": ("Fill",),
    "orders": ("OrderUpdate",),
    "liquidations": ("Liquidation", "Takeover", "Deleverage"),
}
ORDER_STATUSES = ("open", "filled", "cancelled")
_DECIMAL = re.compile(r"^[0-9]{1,18}$")
# The web app (docs/app.md): static files shipped in the package; vendor/ is filled at install time from the npm
# dependencies pinned in package-lock.json and the JS client (clients/js/build.mjs), never from a CDN.
APP_DIR = Path(__file__).resolve().parent / "app"
APP_BUILT_STAMP = "vendor/.built"
APP_TYPES = {".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".css": "text/css",
             ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".txt": "text/plain"}


class NodeFacade(Protocol):
    """What the API needs from the operator process (node/operator.py)."""

    service: OperatorService
    view: ExchangeView
    history: History | None
    feeds: FeedHub
    metrics: NodeMetrics
    rate_limiter: RateLimiter | None  # None: no rate limits
    market_data: MarketData
    book_feed: BookHub

    def status(self) -> dict: ...

    def readiness(self) -> tuple[bool, str]: ...

    def checkpoint_status(self) -> dict: ...

    @property
    def has_chain_side(self) -> bool: ...

    def last_recorded_epoch(self) -> int | None: ...

    async def inbox(self, trader: bytes | None = None): ...


@dataclass(frozen=True, slots=True)
class FeedChannel:
    channel: str  # "all" | "trader" | "market"
    key: bytes | None


def _json_bytes(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer already encoded (msgspec: several times cheaper than web.json_response's json.dumps)."""
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _error(status: int, reason: str, detail: str) -> web.Response:
    return web.json_response({"error": reason, "detail": detail}, status=status)


@web.middleware
async def _cors(request: web.Request, handler):
    """Every document here is public and every write is a signed request, so any page may read and submit
    (the app of one operator reads its peers' status; no cookies or credentials are ever involved)."""
    if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "content-type", "Access-Control-Max-Age": "600"})
    response = await handler(request)
    if not response.prepared:  # a WebSocket or a file already sent its headers
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
    return response


@web.middleware
async def _json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except DdxError as exc:
        return _json_bytes(msgspec.json.encode(error_body(exc)), http_status(exc), error_headers(exc))
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body_too_large", "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return _error(exc.status, reason, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal", "internal error")


def _int_param(request: web.Request, name: str, default: int | None = None, *, lo: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise ApiError("bad_query", f"query parameter {name} is required")
        return default
    if not _DECIMAL.match(raw):  # ASCII digits only: str.isdigit() also accepts "²", which int() refuses
        raise ApiError("bad_query", f"{name} must be a non-negative integer")
    value = int(raw)
    if value < lo:
        raise ApiError("bad_query", f"{name} must be at least {lo}")
    return value


def _path_value(request: web.Request, name: str, abi_type: str):
    try:
        return from_json(abi_type, name, request.match_info[name])
    except ProtocolError as exc:
        raise ApiError("bad_path", str(exc)) from None


def _market_path(request: web.Request) -> bytes:
    """`{market}`: the 0x-hex bytes32 id or the market's symbol (its readable name, e.g. ETHP)."""
    try:
        return id32_of(request.match_info["market"])
    except ProtocolError as exc:
        raise ApiError("bad_path", str(exc)) from None


def _unknown_market(market: bytes) -> ApiError:
    return ApiError("unknown_market", f"no market {render.symbol(market) or render.hex0x(market)}")


def _channel_params(request: web.Request) -> FeedChannel:
    channel = request.query.get("channel", "all")
    if channel == "all":
        return FeedChannel("all", None)
    if channel not in ("trader", "market"):
        raise ApiError("bad_query", "channel must be all, trader or market")
    raw = request.query.get("key")
    try:
        key = from_json("address", "key", raw) if channel == "trader" else id32_of(raw if raw is not None else b"")
    except ProtocolError as exc:
        raise ApiError("bad_query", str(exc)) from None
    return FeedChannel(channel, key)


def _delta_seq(delta) -> int:
    return delta.seq


def _ordinal(routed) -> int:
    return routed.ordinal


async def _pump(ws, sub, reader, sent: int, position, render_one, unit: str) -> None:
    """Forward a feed subscription's queue to `ws` until the client leaves (`reader` ends) or the socket closes:
    each item once, in order, skipping what `sent` (its `position`) already covered; a subscriber that fell behind
    the queue's bound is told to resume from its last `unit`."""
    while not ws.closed:
        if sub.overflowed and sub.queue.empty():
            await ws.send_json({"type": "error", "error": "slow_consumer", "detail": f"resume from your last {unit}"})
            return
        getter = asyncio.ensure_future(sub.queue.get())
        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            return
        item = getter.result()
        if position(item) > sent:
            await ws.send_json(render_one(item))
            sent = position(item)


class Api:
    def __init__(
        self,
        node: NodeFacade,
        max_subscribers: int = MAX_SUBSCRIBERS,
        max_body_bytes: int = MAX_BODY_BYTES,
        token_decimals: dict[bytes, int] | None = None,
        cancels: DisconnectCancels | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.node = node
        self.info = info or {}
        self.token_decimals = token_decimals or {}
        self.max_subscribers = max_subscribers
        self.max_body_bytes = max_body_bytes
        self.limiter = node.rate_limiter
        self.channels = RequestChannels(node.service, max_body_bytes, self.limiter, cancels)

    @web.middleware
    async def limit_reads(self, request: web.Request, handler):
        """Every GET but the probes and the scrape takes a token from the client IP's read bucket."""
        if self.limiter is not None and request.method == "GET" and request.path not in UNLIMITED_READS:
            self.limiter.charge_read(self.limiter.client(request.remote, request.headers))
        return await handler(request)

    # ------------------------------------------------------------ requests and receipts

    async def post_request(self, request: web.Request) -> web.Response:
        origin = None
        if self.limiter is not None:
            origin = self.limiter.origin(self.limiter.client(request.remote, request.headers))
            self.limiter.precheck(origin)  # an empty IP bucket refuses before the body is read
        body = await request.read()  # bounded by client_max_size: 413 body_too_large beyond it
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            if origin is not None:
                self.limiter.charge_origin(origin, 1)
            raise ApiError("malformed_json", f"not JSON: {exc}") from None
        record = await self.node.service.submit(doc, origin)
        return _json_bytes(msgspec.json.encode(self.node.service.receipt_json(record)))

    async def get_receipt(self, request: web.Request) -> web.Response:
        request_hash = _path_value(request, "request_hash", "bytes32")
        record = self.node.service.find_receipt(request_hash)
        if record is None and self.node.history is not None:
            fields = await asyncio.to_thread(self.node.history.receipt_fields, request_hash)
            record = ReceiptRecord(*fields) if fields else None
        if record is None:
            raise ApiError("unknown_request", "no sequenced request with this hash")
        return web.json_response(self.node.service.receipt_json(record))

    async def get_request_log(self, request: web.Request) -> web.Response:
        first = _int_param(request, "from", lo=1)
        last = _int_param(request, "to", first + MAX_RANGE - 1, lo=first)
        last = min(last, first + MAX_RANGE - 1)
        history = self._history()
        entries = await asyncio.to_thread(history.requests, first, last)
        return web.json_response(
            {"from": render.integer(first), "to": render.integer(last), "entries": [render.request_doc(a) for a in entries]}
        )

    def _history(self) -> History:
        if self.node.history is None:
            raise ApiError("history_disabled", "this node keeps no history")
        return self.node.history

    async def get_updates(self, request: web.Request) -> web.Response:
        after = _int_param(request, "after", 0)
        limit = min(_int_param(request, "limit", 100, lo=1), MAX_RANGE)
        channel = _channel_params(request)
        trader = channel.key if channel.channel == "trader" else None
        market = channel.key if channel.channel == "market" else None
        last_ordinal = self.node.feeds.last_ordinal
        items = self.node.feeds.recent(after, limit, trader, market)
        if items is None:
            if self.node.history is None:
                raise ApiError("resume_unavailable", "those updates are no longer held by this node")
            items = await asyncio.to_thread(self.node.history.updates, after, limit, trader=trader, market=market)
        updates = [render.update_doc(u) for u in items]
        return web.json_response(
            {"after": render.integer(after), "updates": updates, "lastOrdinal": render.integer(last_ordinal)}
        )

    async def get_checkpoints(self, request: web.Request) -> web.Response:
        limit = min(_int_param(request, "limit", 50, lo=1), MAX_RANGE)
        items = await asyncio.to_thread(self._history().checkpoints, limit)
        checkpoints = [render.checkpoint_doc(*item) for item in items]
        return web.json_response({"checkpoints": checkpoints, "current": self.node.checkpoint_status()})

    async def get_inbox(self, request: web.Request) -> web.Response:
        trader = None
        if "trader" in request.query:
            try:
                trader = from_json("address", "trader", request.query["trader"])
            except ProtocolError as exc:
                raise ApiError("bad_query", str(exc)) from None
        return web.json_response(render.inbox_doc(await self.node.inbox(trader)))

    # ------------------------------------------------------------ exchange state

    async def get_book(self, request: web.Request) -> web.Response:
        market = _market_path(request)
        book = self.node.view.book(market)
        if book is None:
            raise _unknown_market(market)
        return web.json_response(render.book_doc(book) | self._last_ordinal())

    async def get_market(self, request: web.Request) -> web.Response:
        market_id = _market_path(request)
        market = self.node.view.market(market_id)
        if market is None:
            raise _unknown_market(market_id)
        doc = render.market_doc(market, self.token_decimals.get(market.token))
        return web.json_response(doc | self._last_ordinal())

    async def get_trader(self, request: web.Request) -> web.Response:
        state = render.trader_doc(self.node.view.trader(_path_value(request, "trader", "address")))
        part = request.match_info.get("part")
        if part is not None:
            if part not in state:
                raise ApiError("not_found", f"no {part} view")
            state = {part: state[part]}
        return web.json_response(state | self._last_ordinal())

    def _proof_epoch(self, request: web.Request) -> int | None:
        """`?epoch=N`, else the last epoch recorded on-chain (what a claim or an escape is checked against); a node
        without a chain side (no [chain] rpc) falls back to its latest frozen epoch (None)."""
        if "epoch" in request.query:
            return _int_param(request, "epoch", lo=1)
        if not self.node.has_chain_side:
            return None
        recorded = self.node.last_recorded_epoch()
        if recorded is None:
            raise ApiError("no_recorded_epoch", "no checkpoint recorded on-chain yet: pass ?epoch= for a frozen one")
        return recorded

    async def get_withdrawal_proof(self, request: web.Request) -> web.Response:
        trader, token = _path_value(request, "trader", "address"), _path_value(request, "token", "address")
        epoch = self._proof_epoch(request)
        await self.node.view.prepare_proofs(epoch)  # a first proof of an epoch rebuilds its tree off the loop
        return web.json_response(render.proof_doc(self.node.view.withdrawal_proof(trader, token, epoch)))

    async def get_balance_proof(self, request: web.Request) -> web.Response:
        trader, token = _path_value(request, "trader", "address"), _path_value(request, "token", "address")
        epoch = self._proof_epoch(request)
        await self.node.view.prepare_proofs(epoch)
        return web.json_response(render.proof_doc(self.node.view.balance_proof(trader, token, epoch)))

    # ------------------------------------------------------------ market data (node/market_data.py)

    def _known_market(self, request: web.Request):
        market = _market_path(request)
        view = self.node.view.market(market)
        if view is None:
            raise _unknown_market(market)
        return market, view

    async def get_order(self, request: web.Request) -> web.Response:
        """`GET /v1/orders/{order_hash}`: an open order by its id (closed ones: the trader's order history)."""
        view = self.node.view.open_order(_path_value(request, "order_hash", "bytes32"))
        if view is None:
            raise ApiError("not_found", "no open order with this id (see /v1/traders/{trader}/orders for closed ones)")
        return web.json_response(render.order_doc(view) | {"trader": render.checksum_address(view.trader)}
                                 | self._last_ordinal())

    async def find_order(self, request: web.Request) -> web.Response:
        """`GET /v1/orders?trader=&strategy=&clientOrderId=`: a strategy's open order by its client order id."""
        try:
            trader = from_json("address", "trader", request.query.get("trader"))
            strategy = id32_of(request.query.get("strategy", "main"))
            client_order_id = from_json("bytes32", "clientOrderId", request.query.get("clientOrderId"))
        except ProtocolError as exc:
            raise ApiError("bad_query", str(exc)) from None
        view = self.node.view.open_order(trader=trader, strategy=strategy, client_order_id=client_order_id)
        if view is None:
            raise ApiError("not_found", "no open order of this strategy has this client order id")
        return web.json_response(render.order_doc(view) | {"trader": render.checksum_address(view.trader)}
                                 | self._last_ordinal())

    async def get_markets(self, request: web.Request) -> web.Response:
        return web.json_response(render.markets_doc(self.node.view.markets()) | self._last_ordinal())

    def _ticker(self, view) -> dict[str, Any]:
        md = self.node.market_data
        return render.ticker_doc(view, md.day_stats(view.market), md.best(view.market))

    async def get_tickers(self, request: web.Request) -> web.Response:
        return web.json_response({"tickers": [self._ticker(v) for v in self.node.view.markets()]} | self._last_ordinal())

    async def get_ticker(self, request: web.Request) -> web.Response:
        _, view = self._known_market(request)
        return web.json_response(self._ticker(view) | self._last_ordinal())

    async def get_trades(self, request: web.Request) -> web.Response:
        market, _ = self._known_market(request)
        limit = min(_int_param(request, "limit", 100, lo=1), MAX_RANGE)
        trades = self.node.market_data.trades(market, limit)
        return web.json_response({"market": render.hex0x(market), "trades": [render.trade_doc(t) for t in trades]} | self._last_ordinal())

    async def get_candles(self, request: web.Request) -> web.Response:
        market, _ = self._known_market(request)
        interval = request.query.get("interval", "1m")
        if interval not in INTERVALS:
            raise ApiError("bad_query", f"interval must be one of {', '.join(INTERVALS)}")
        start = _int_param(request, "start") if "start" in request.query else None
        end = _int_param(request, "end") if "end" in request.query else None
        limit = min(_int_param(request, "limit", 500, lo=1), MAX_RANGE)
        candles = self.node.market_data.candles(market, interval, start, end, limit)
        return web.json_response(
            {"market": render.hex0x(market), "interval": interval, "candles": [render.candle_doc(c) for c in candles]}
            | self._last_ordinal()
        )

    async def get_funding_history(self, request: web.Request) -> web.Response:
        market, _ = self._known_market(request)
        start = _int_param(request, "start") if "start" in request.query else None
        end = _int_param(request, "end") if "end" in request.query else None
        limit = min(_int_param(request, "limit", 100, lo=1), MAX_RANGE)
        records = self.node.market_data.funding_history(market, start, end, limit)
        return web.json_response(
            {"market": render.hex0x(market), "funding": [render.funding_record_doc(f) for f in records]} | self._last_ordinal()
        )

    async def get_l2_book(self, request: web.Request) -> web.Response:
        market, _ = self._known_market(request)
        depth = min(_int_param(request, "depth", 100, lo=1), MAX_BOOK_DEPTH)
        return web.json_response(render.l2_doc(self.node.market_data.book(market, depth)) | self._last_ordinal())

    async def get_account(self, request: web.Request) -> web.Response:
        trader = _path_value(request, "trader", "address")
        return web.json_response(render.account_doc(self.node.view.account(trader)) | self._last_ordinal())

    def _page(self, request: web.Request) -> tuple[int | None, int]:
        before = _int_param(request, "before", lo=1) if "before" in request.query else None
        return before, min(_int_param(request, "limit", 100, lo=1), MAX_RANGE)

    async def get_trader_history(self, request: web.Request) -> web.Response:
        """A trader's fills, order events or liquidations from history, newest first, paged by ordinal."""
        trader = _path_value(request, "trader", "address")
        what = request.match_info.route.resource.canonical.rsplit("/", 1)[1]
        before, limit = self._page(request)
        status = request.query.get("status")
        if status is not None and (what != "orders" or status not in ORDER_STATUSES):
            raise ApiError("bad_query", f"status filters orders: one of {', '.join(ORDER_STATUSES)}")
        history = self._history()
        rows = await asyncio.to_thread(history.trader_updates, trader, TRADER_HISTORY_KINDS[what], before, limit)
        next_cursor = rows[-1].ordinal if len(rows) == limit else None
        if what == "fills":
            items = [render.own_fill_doc(trader, r) for r in rows]
        elif what == "orders":
            items = [d for d in (render.order_event_doc(r) for r in rows) if status is None or d["status"] == status]
        else:
            items = [render.update_doc(r) for r in rows]
        return web.json_response(render.page_doc(items, next_cursor) | self._last_ordinal())

    async def get_funding_payments(self, request: web.Request) -> web.Response:
        trader = _path_value(request, "trader", "address")
        before, limit = self._page(request)
        rows = await asyncio.to_thread(self._history().funding_payments, trader, before, limit)
        next_cursor = rows[-1].ordinal if len(rows) >= limit else None
        return web.json_response(render.page_doc([render.funding_payment_doc(p) for p in rows], next_cursor) | self._last_ordinal())

    async def book_websocket(self, request: web.Request) -> web.StreamResponse:
        """`/v1/ws?channel=book&key=<market>[&from=<seq>]`: an L2 snapshot (or, resuming, the deltas after `from`),
        then one delta per entry that changed the book (docs/api.md, "L2 book")."""
        try:
            market = id32_of(request.query.get("key") or "")
        except ProtocolError as exc:
            raise ApiError("bad_query", str(exc)) from None
        if self.node.view.market(market) is None:
            raise _unknown_market(market)
        after = None if "from" not in request.query else _int_param(request, "from")
        depth = min(_int_param(request, "depth", 100, lo=1), MAX_BOOK_DEPTH)
        if self.node.book_feed.subscriber_count() >= self.max_subscribers:
            raise ApiError("too_many_subscribers", "this node serves its maximum of feeds: try another operator")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        await ws.prepare(request)
        md = self.node.market_data
        # one synchronous step: the queue gets every delta after the snapshot (or the backlog) taken here
        sub = self.node.book_feed.subscribe(market)
        first: list[dict[str, Any]]
        if after is None:
            book = md.book(market, depth)
            first = [{"type": "book"} | render.l2_doc(book)]
            sent = book.seq
        else:
            backlog = md.deltas_after(market, after)
            if backlog is None:
                first = [{"type": "error", "error": "resume_unavailable", "detail": "take a snapshot: connect without from"}]
                sent = -1
            else:
                first = [render.book_delta_doc(d) for d in backlog]
                sent = backlog[-1].seq if backlog else after
        reader = asyncio.ensure_future(self._drain_client(ws))
        try:
            for doc in first:
                await ws.send_json(doc)
            if sent >= 0:
                await _pump(ws, sub, reader, sent, _delta_seq, render.book_delta_doc, "seq")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.node.book_feed.unsubscribe(sub)
            reader.cancel()
            await ws.close()
        return ws

    # ------------------------------------------------------------ operations

    async def livez(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, why = self.node.readiness()
        return web.json_response({"ready": ready, "detail": why}, status=200 if ready else 503)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.status())

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.node.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def get_info(self, request: web.Request) -> web.Response:
        """The deployment this node serves: what a wallet app needs before it can sign (docs/app.md)."""
        service = self.node.service
        doc = {
            "chainId": render.integer(service.domain.chain_id),
            "exchange": checksum_address(service.domain.verifying_contract),
            "operator": None if service.operator_address is None else checksum_address(service.operator_address),
            "operators": [],
            "collateral": [{"token": checksum_address(t), "decimals": render.integer(d)} for t, d in self.token_decimals.items()],
        }
        return web.json_response(doc | self.info)

    async def app_file(self, request: web.Request) -> web.StreamResponse:
        """`/app/…`: the single-page app's files (index.html for `/app/`)."""
        name = request.match_info["path"] or "index.html"
        path = (APP_DIR / name).resolve()
        if not path.is_relative_to(APP_DIR) or not path.is_file() or path.name.startswith("."):
            raise web.HTTPNotFound()
        if not (APP_DIR / APP_BUILT_STAMP).exists():
            return _error(503, "app_not_built", "the app's vendored modules are missing: run `make install` "
                          "(npm ci, then node clients/js/build.mjs)")
        content_type = APP_TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    async def app_root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/app/")

    async def openapi(self, request: web.Request) -> web.Response:
        text = resources.files("ddx_offchain.api").joinpath("openapi.json").read_text()
        return web.Response(text=text, content_type="application/json")

    # ------------------------------------------------------------ WebSocket request channel

    async def request_channel(self, request: web.Request) -> web.StreamResponse:
        return await self.channels.serve(request)

    async def on_shutdown(self, app: web.Application) -> None:
        await self.channels.shutdown()

    # ------------------------------------------------------------ WebSocket feed

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("channel") == "book":
            return await self.book_websocket(request)
        channel = _channel_params(request)
        after = None if "from" not in request.query else _int_param(request, "from")
        if channel.channel == "market" and self.node.view.book(channel.key) is None:
            raise _unknown_market(channel.key)
        if self.node.feeds.subscriber_count() >= self.max_subscribers:
            raise ApiError("too_many_subscribers", "this node serves its maximum of feeds: try another operator")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        await ws.prepare(request)
        hub = self.node.feeds
        # Subscribe first: from this step on the queue gets every update after sub.start, and the snapshot (or the
        # backlog, read while live updates queue up) covers what came before; `sent` drops any repeat by ordinal.
        sub = hub.subscribe(channel.channel, channel.key)
        snapshot = self._snapshot(channel, sub.start) if after is None else None
        self.node.metrics.ws_subscribers.inc()
        reader = asyncio.ensure_future(self._drain_client(ws))
        sent = sub.start if after is None else after
        try:
            if snapshot is not None:
                await ws.send_json(snapshot)
            else:
                try:
                    backlog = await hub.backlog(after, sub)
                except ResumeUnavailable as exc:
                    await ws.send_json({"type": "error", "error": exc.reason, "detail": str(exc)})
                    return ws
                for routed in backlog:
                    if routed.ordinal > sent:
                        await ws.send_json(render.feed_message(routed))
                        sent = routed.ordinal
            await _pump(ws, sub, reader, sent, _ordinal, render.feed_message, "ordinal")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            hub.unsubscribe(sub)
            reader.cancel()
            self.node.metrics.ws_subscribers.dec()
            await ws.close()
        return ws

    def _snapshot(self, channel: FeedChannel, ordinal: int) -> dict[str, Any]:
        """The channel's state at `ordinal`: taken in the same event-loop step as the subscription."""
        view = self.node.view
        if channel.channel == "trader":
            state = render.trader_doc(view.trader(channel.key))
        elif channel.channel == "market":
            book = view.book(channel.key)
            state = None if book is None else render.book_doc(book)
        else:
            state = {"stateRoot": "0x" + view.state_root().hex()}
        return {"type": "snapshot", "channel": channel.channel, "ordinal": render.integer(ordinal), "state": state}

    def _last_ordinal(self) -> dict[str, str]:
        """The feed position a view was read at (resume the feed after it)."""
        return {"lastOrdinal": render.integer(self.node.feeds.last_ordinal)}

    async def _drain_client(self, ws: web.WebSocketResponse) -> None:
        """The feed is one-way; reading keeps pings answered and notices the client closing."""
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break


def build_app(
    node: NodeFacade,
    *,
    max_subscribers: int = MAX_SUBSCRIBERS,
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_routes=(),
    token_decimals: dict[bytes, int] | None = None,
    cancel_margin_ms: int = MARGIN_MS,
    cancels: DisconnectCancels | None = None,
    info: dict[str, Any] | None = None,
) -> web.Application:
    """`extra_routes`: more aiohttp routes served beside these (the chain side's checkpoint-signature route).
    `max_body_bytes` bounds a request body (HTTP) and the request inside a WebSocket frame. `token_decimals`: the
    collateral tokens' decimals (from the deployment manifest), rendered with each market as `tokenDecimals`.
    `cancels`: the request channel's cancel-on-disconnect switches (default: made here with `cancel_margin_ms`).
    `info`: what `/v1/info` adds to the node's domain and key (the operators' APIs)."""
    if cancels is None:
        cancels = DisconnectCancels(node.service, node.metrics, margin_ms=cancel_margin_ms)
    api = Api(node, max_subscribers, max_body_bytes, token_decimals, cancels, info)
    app = web.Application(middlewares=[_cors, _json_errors, api.limit_reads], client_max_size=max_body_bytes)
    app.on_shutdown.append(api.on_shutdown)
    app.add_routes(
        [
            web.post("/v1/requests", api.post_request),
            web.get("/v1/receipts/{request_hash}", api.get_receipt),
            web.get("/v1/requests", api.get_request_log),
            web.get("/v1/updates", api.get_updates),
            web.get("/v1/checkpoints", api.get_checkpoints),
            web.get("/v1/inbox", api.get_inbox),
            web.get("/v1/books/{market}", api.get_book),
            web.get("/v1/markets/{market}", api.get_market),
            web.get("/v1/markets", api.get_markets),
            web.get("/v1/orders/{order_hash}", api.get_order),
            web.get("/v1/orders", api.find_order),
            web.get("/v1/markets/{market}/trades", api.get_trades),
            web.get("/v1/markets/{market}/candles", api.get_candles),
            web.get("/v1/markets/{market}/funding", api.get_funding_history),
            web.get("/v1/markets/{market}/book", api.get_l2_book),
            web.get("/v1/tickers", api.get_tickers),
            web.get("/v1/tickers/{market}", api.get_ticker),
            web.get("/v1/traders/{trader}/account", api.get_account),
            web.get("/v1/traders/{trader}/funding", api.get_funding_payments),
            web.get("/v1/traders/{trader}/fills", api.get_trader_history),
            web.get("/v1/traders/{trader}/orders", api.get_trader_history),
            web.get("/v1/traders/{trader}/liquidations", api.get_trader_history),
            web.get("/v1/traders/{trader}", api.get_trader),
            web.get("/v1/traders/{trader}/{part}", api.get_trader),
            web.get("/v1/proofs/withdrawal/{trader}/{token}", api.get_withdrawal_proof),
            web.get("/v1/proofs/balance/{trader}/{token}", api.get_balance_proof),
            web.get("/v1/ws", api.websocket),
            web.get("/v1/ws/requests", api.request_channel),
            web.get("/v1/status", api.status),
            web.get("/livez", api.livez),
            web.get("/readyz", api.readyz),
            web.get("/metrics", api.metrics),
            web.get("/v1/openapi.json", api.openapi),
            web.get("/v1/info", api.get_info),
            web.get("/app", api.app_root),
            web.get("/app/{path:.*}", api.app_file),
            *extra_routes,
        ]
    )
    return app

