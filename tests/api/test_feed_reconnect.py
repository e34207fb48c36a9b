"""The SDK's WebSocket feeds against a scripted server: what the client does when a connection drops, when the book
stops chaining on or its checksum disagrees, when the server can no longer resume, and which resume point it asks
for on each new connection (the one reconnect loop behind `DdxClient.stream` and `DdxClient.book_stream`)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from apihelpers import DOMAIN, OPERATOR

from ddx_offchain.client import DdxClient
from ddx_offchain.client.api import RequestRefused
from ddx_offchain.protocol.book_checksum import book_checksum

MARKET = "0x" + "ab" * 32


def book(seq: int, bids: list[list[int]], asks: list[list[int]]) -> dict:
    return {"type": "book", "market": MARKET, "seq": seq, "bids": bids, "asks": asks,
            "checksum": book_checksum(sorted(map(tuple, bids), reverse=True), sorted(map(tuple, asks)))}


def delta(prev: int, seq: int, bids: list[list[int]], asks: list[list[int]], checksum: int) -> dict:
    return {"type": "bookDelta", "market": MARKET, "prevSeq": prev, "seq": seq, "bids": bids, "asks": asks,
            "checksum": checksum}


async def scripted(connections: list[list[dict]]):
    """A server whose n-th WebSocket connection is sent `connections[n]` and then closed; returns the runner and
    the query parameters each connection arrived with."""
    seen: list[dict[str, str]] = []

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        seen.append(dict(request.query))
        for doc in connections[len(seen) - 1]:
            await sock.send_json(doc)
        await sock.close()
        return sock

    app = web.Application()
    app.router.add_get("/v1/ws", ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", seen


async def take(stream, n: int) -> list:
    return [await asyncio.wait_for(anext(stream), 5) for _ in range(n)]


def test_book_feed_resyncs_on_a_bad_checksum_resumes_after_a_drop_and_starts_over_when_resume_is_gone():
    after_5 = book_checksum([(100, 7)], [(110, 2)])
    connections = [
        [book(1, [[100, 5]], [[110, 2]]), delta(1, 2, [[100, 6]], [], checksum=12345)],  # checksum disagrees
        [book(5, [[100, 5]], [[110, 2]]), delta(5, 6, [[100, 7]], [], checksum=after_5)],  # then the line drops
        [{"type": "error", "error": "resume_unavailable", "detail": "seq 6 is no longer held"}],
        [book(9, [[101, 1]], [])],
    ]

    async def scenario():
        runner, url, seen = await scripted(connections)
        try:
            async with DdxClient(url, DOMAIN, {OPERATOR}) as client:
                stream = client.book_stream(MARKET, depth=10)
                books = await take(stream, 4)
                await stream.aclose()
        finally:
            await runner.cleanup()
        return books, seen

    books, seen = asyncio.run(scenario())
    assert [(b.seq, b.bids, b.asks) for b in books] == [
        (1, [(100, 5)], [(110, 2)]), (5, [(100, 5)], [(110, 2)]), (6, [(100, 7)], [(110, 2)]), (9, [(101, 1)], [])
    ]
    # a fresh snapshot after the bad checksum, a resume from the last seq after the drop, a fresh one when refused
    assert [s.get("from") for s in seen] == [None, None, "6", None]
    assert all(s["channel"] == "book" and s["depth"] == "10" for s in seen)


def test_update_feed_resumes_from_the_last_ordinal_without_repeats_and_ends_on_a_refusal():
    connections = [
        [{"type": "snapshot", "ordinal": 3}, {"type": "update", "ordinal": 4}],
        [{"type": "update", "ordinal": 4}, {"type": "update", "ordinal": 5},
         {"type": "error", "error": "slow_consumer"}, {"type": "update", "ordinal": 6},
         {"type": "error", "error": "unknown_channel", "detail": "no such channel"}],
    ]

    async def scenario():
        runner, url, seen = await scripted(connections)
        try:
            async with DdxClient(url, DOMAIN, {OPERATOR}) as client:
                stream = client.stream("trader", "0x" + "11" * 20)
                docs = await take(stream, 4)
                with pytest.raises(RequestRefused) as refused:
                    await asyncio.wait_for(anext(stream), 5)
        finally:
            await runner.cleanup()
        return docs, seen, refused.value

    docs, seen, refused = asyncio.run(scenario())
    assert [(d["type"], d["ordinal"]) for d in docs] == [("snapshot", 3), ("update", 4), ("update", 5), ("update", 6)]
    assert [s.get("from") for s in seen] == [None, "4"]
    assert all(s["channel"] == "trader" and s["key"] == "0x" + "11" * 20 for s in seen)
    assert refused.reason == "unknown_channel"
