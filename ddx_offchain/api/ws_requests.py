"""Request submission over one WebSocket (`GET /v1/ws/requests`): the same admission, sequencing and receipts as
`POST /v1/requests`, without an HTTP exchange per request.

The client sends text frames `{"id": "<tag>", "request": <wire form, docs/protocol.md §7.2>}`; the node answers
each with `{"id": "<tag>", "receipt": {...}}` or `{"id": "<tag>", "error": <reason>, "detail": …}`. Requests are
processed concurrently, so answers may arrive in another order than the requests: `id` (≤ 64 characters, chosen
by the client) pairs them. At most MAX_IN_FLIGHT requests per connection are processed at once; beyond that
the answer is `too_many_in_flight`. With rate limits, the connection has its own bucket beside its IP's (a refusal
is the same error object as over HTTP: `rate_limited`, `bucket`, `retryAfterMs`).
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from aiohttp import WSMsgType, web

from ..errors import DdxError
from ..node.rate_limits import RateLimiter
from ..node.service import OperatorService
from .errors import error_body

log = logging.getLogger("ddx.api")

MAX_IN_FLIGHT = 256
MAX_ID_CHARS = 64
FRAME_OVERHEAD = 256  # the envelope around a request body


async def serve_request_channel(
    request: web.Request, service: OperatorService, max_body_bytes: int, limiter: RateLimiter | None = None
) -> web.WebSocketResponse:
    """A frame is bounded by its size (the request's bound plus the envelope) and decoded once; the request
    inside goes to admission as the decoded document, with this connection as its rate-limit origin."""
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=max_body_bytes + FRAME_OVERHEAD)
    await ws.prepare(request)
    origin = None if limiter is None else limiter.origin(request.remote, connection=True)
    in_flight: set[asyncio.Task] = set()
    send_lock = asyncio.Lock()

    async def answer(doc: dict) -> None:
        if ws.closed:
            return
        async with send_lock:
            await ws.send_str(msgspec.json.encode(doc).decode())

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
            if not isinstance(tag, str) or not 0 < len(tag) <= MAX_ID_CHARS or set(envelope) != {"id", "request"}:
                await refuse_frame(tag if isinstance(tag, str) and len(tag) <= MAX_ID_CHARS else None, "bad_schema",
                                   'a frame is {"id": "<1..64 chars>", "request": {...}}')
                continue
            if len(in_flight) >= MAX_IN_FLIGHT:
                await answer({"id": tag, "error": "too_many_in_flight", "detail": f"at most {MAX_IN_FLIGHT} per connection"})
                continue
            task = asyncio.ensure_future(handle(tag, envelope["request"]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
    finally:
        if in_flight:
            # requests already admitted keep their course (a retry with the same bytes finds the outcome)
            await asyncio.gather(*in_flight, return_exceptions=True)
        await ws.close()
    return ws
