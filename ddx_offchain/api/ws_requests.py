"""Request submission over one WebSocket (`GET /v1/ws/requests`): the same admission, sequencing and receipts as
`POST /v1/requests`, without an HTTP exchange per request.

The client sends text frames `{"id": "<tag>", "request": <wire form, docs/protocol.md §7.2>}`; the node answers
each with `{"id": "<tag>", "receipt": {...}}` or `{"id": "<tag>", "error": <reason>, "detail": …}`. Requests are
processed concurrently, so answers may arrive in another order than the requests: `id` (≤ 64 characters, chosen
by the client) pairs them. At most MAX_IN_FLIGHT requests per connection are processed at once; beyond that
the answer is `too_many_in_flight`. With rate limits, the connection has its own bucket beside its IP's (a refusal
is the same error object as over HTTP: `rate_limited`, `bucket`, `retryAfterMs`).

Cancel on disconnect (node/disconnect_cancel.py): `{"id", "op": "cancelOnDisconnect", "request": <signed
ScheduleCancel> | null}` arms (or refreshes) / disarms the connection's held ScheduleCancel, answered in order with
`{"id", "cancelOnDisconnect": {"status": "armed" | "disarmed", ...}}` or an error; when the connection ends the
held request is submitted. A lapse (no refresh before the deadline) is told as `{"id": null, "cancelOnDisconnect":
{"status": "fired" | "failed", ...}}`. When the server stops, held requests are dropped and channels are closed
with 1001 (going away).
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from ..errors import DdxError
from ..node.disconnect_cancel import DisconnectCancels, FireOutcome, Held
from ..node.rate_limits import RateLimiter
from ..node.service import OperatorService
from . import render
from .errors import error_body

log = logging.getLogger("ddx.api")

MAX_IN_FLIGHT = 256
MAX_ID_CHARS = 64
FRAME_OVERHEAD = 256  # the envelope around a request body
COD_OP = "cancelOnDisconnect"
BAD_FRAME = 'a frame is {"id": "<1..64 chars>", "request": {...}} or {"id", "op": "cancelOnDisconnect", "request": {...} | null}'


def held_doc(held: Held, margin_ms: int) -> dict:
    return {
        "status": "armed",
        "requestHash": render.hex0x(held.signed.request_hash),
        "time": render.integer(held.request.time),
        "deadline": render.integer(held.deadline_ms),
        "marginMs": render.integer(margin_ms),
    }


def outcome_doc(outcome: FireOutcome, service: OperatorService) -> dict:
    """A lapse's outcome as told on the channel: `fired` with the receipt, or `failed` with the reason."""
    doc = {
        "status": "fired" if outcome.fired else "failed",
        "cause": outcome.cause,
        "requestHash": render.hex0x(outcome.held.signed.request_hash),
        "time": render.integer(outcome.held.request.time),
    }
    if outcome.record is not None:
        doc["receipt"] = service.receipt_json(outcome.record)
    if not outcome.fired:
        doc["error"] = outcome.reason
        doc["detail"] = outcome.detail
    return doc


class RequestChannels:
    """The request channels of one API server: serves each, holds their cancel-on-disconnect switches (`cancels`,
    None: the op is refused), and closes them all when the server stops."""

    def __init__(
        self,
        service: OperatorService,
        max_body_bytes: int,
        limiter: RateLimiter | None = None,
        cancels: DisconnectCancels | None = None,
    ) -> None:
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter
        self.cancels = cancels
        self._open: set[web.WebSocketResponse] = set()

    async def shutdown(self) -> None:
        """aiohttp on_shutdown: drop held requests first (nothing is sequenced for a stopping server), then close
        every channel (1001 going away), so that none keeps the server waiting for its handler."""
        if self.cancels is not None:
            await self.cancels.close()
        if self._open:
            await asyncio.gather(
                *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping") for ws in list(self._open)),
                return_exceptions=True,
            )

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=self.max_body_bytes + FRAME_OVERHEAD)
        await ws.prepare(request)
        self._open.add(ws)
        try:
            return await serve_request_channel(ws, request, self.service, self.limiter, self.cancels)
        finally:
            self._open.discard(ws)


async def serve_request_channel(
    ws: web.WebSocketResponse,
    request: web.Request,
    service: OperatorService,
    limiter: RateLimiter | None = None,
    cancels: DisconnectCancels | None = None,
) -> web.WebSocketResponse:
    """A frame is bounded by its size (the request's bound plus the envelope) and decoded once; the request
    inside goes to admission as the decoded document, with this connection as its rate-limit origin."""
    origin = None if limiter is None else limiter.origin(limiter.client(request.remote, request.headers), connection=True)
    in_flight: set[asyncio.Task] = set()
    send_lock = asyncio.Lock()

    async def answer(doc: dict) -> None:
        if ws.closed:
            return
        async with send_lock:
            await ws.send_str(msgspec.json.encode(doc).decode())

    async def tell_lapse(outcome: FireOutcome) -> None:
        await answer({"id": None, COD_OP: outcome_doc(outcome, service)})

    switch = cancels.open(tell_lapse) if cancels is not None else None

    async def handle(tag: str, doc: object) -> None:
        try:
            record = await service.submit(doc, origin)
            await answer({"id": tag, "receipt": service.receipt_json(record)})
        except DdxError as exc:
            await answer({"id": tag, **error_body(exc)})
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("request channel: unhandled error")
            await answer({"id": tag, "error": "internal", "detail": "internal error"})

    async def refuse_frame(tag: str | None, reason: str, detail: str) -> None:
        """A frame refused before admission still costs its origin one token (a rate-limit refusal answers instead)."""
        if origin is not None:
            try:
                limiter.charge_origin(origin, 1)
            except DdxError as exc:
                await answer({"id": tag, **error_body(exc)})
                return
        await answer({"id": tag, "error": reason, "detail": detail})

    async def cancel_on_disconnect(tag: str, doc: object) -> None:
        """Arm, refresh or disarm in frame order (synchronously: a refresh never overtakes an earlier one)."""
        if switch is None:
            await refuse_frame(tag, "cod_unavailable", "this server holds no cancel-on-disconnect")
            return
        try:
            if doc is None:
                switch.disarm()
                await answer({"id": tag, COD_OP: {"status": "disarmed"}})
            else:
                held = switch.arm(doc, origin)
                await answer({"id": tag, COD_OP: held_doc(held, cancels.margin_ms)})
        except DdxError as exc:
            await answer({"id": tag, **error_body(exc)})

    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
            if msg.type != WSMsgType.TEXT:
                await refuse_frame(None, "bad_frame", "send JSON text frames")
                continue
            try:
                envelope = msgspec.json.decode(msg.data)
            except msgspec.DecodeError as exc:
                await refuse_frame(None, "malformed_json", str(exc))
                continue
            tag = envelope.get("id") if isinstance(envelope, dict) else None
            keys = set(envelope) if isinstance(envelope, dict) else None
            is_op = keys == {"id", "op", "request"} and envelope["op"] == COD_OP
            if not isinstance(tag, str) or not 0 < len(tag) <= MAX_ID_CHARS or (keys != {"id", "request"} and not is_op):
                await refuse_frame(tag if isinstance(tag, str) and len(tag) <= MAX_ID_CHARS else None, "bad_schema", BAD_FRAME)
                continue
            if is_op:
                await cancel_on_disconnect(tag, envelope["request"])
                continue
            if len(in_flight) >= MAX_IN_FLIGHT:
                await answer({"id": tag, "error": "too_many_in_flight", "detail": f"at most {MAX_IN_FLIGHT} per connection"})
                continue
            task = asyncio.ensure_future(handle(tag, envelope["request"]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
    finally:
        if switch is not None:
            switch.end()  # the held request (if any) is submitted now, or dropped if the server is stopping
        if in_flight:
            # requests already admitted keep their course (a retry with the same bytes finds the outcome)
            await asyncio.gather(*in_flight, return_exceptions=True)
        await ws.close()
    return ws
