"""FeedHub routing and bounds, without a server."""

from __future__ import annotations

import asyncio

import pytest

from ddx_offchain.node.feeds import FeedHub, ResumeUnavailable
from ddx_offchain.node.state_machine import SEQUENCED, AppliedEntry, ExecutionUpdate

A, B, C = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20
M = b"M".ljust(32, b"\x00")


def applied(*updates) -> AppliedEntry:
    return AppliedEntry(1, 1, b"\x01", SEQUENCED, 0, updates=list(updates))


def drain(sub) -> list[int]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait()["ordinal"])
    return out


def test_routing_by_trader_market_and_all():
    async def scenario():
        hub = FeedHub(None)
        subs = {name: hub.subscribe(*spec, None)[0] for name, spec in
                {"a": ("trader", A), "b": ("trader", B), "c": ("trader", C), "m": ("market", M), "all": ("all", None)}.items()}
        hub.publish(applied(
            ExecutionUpdate(1, 1, "Fill", (A, B), M, {}),  # maker and taker both see a fill
            ExecutionUpdate(2, 1, "StrategyUpdate", (B,), None, {}),
            ExecutionUpdate(3, 1, "PriceUpdate", (), M, {}),
        ))
        got = {name: drain(sub) for name, sub in subs.items()}
        assert got == {"a": [1], "b": [1, 2], "c": [], "m": [1, 3], "all": [1, 2, 3]}
        for sub in subs.values():
            hub.unsubscribe(sub)
        assert hub.subscriber_count() == 0 and hub._by_key == {} and hub._all == set()

    asyncio.run(scenario())


def test_slow_subscriber_is_marked_and_stops_receiving(monkeypatch):
    async def scenario():
        monkeypatch.setattr("ddx_offchain.node.feeds.SUBSCRIBER_QUEUE", 2)
        hub = FeedHub(None)
        slow, _ = hub.subscribe("all", None, None)
        hub.publish(applied(*(ExecutionUpdate(i, 1, "X", (), None, {}) for i in range(1, 6))))
        assert slow.overflowed and drain(slow) == [1, 2]

    asyncio.run(scenario())


def test_ring_without_history_refuses_resumes_it_cannot_serve():
    async def scenario():
        hub = FeedHub(None, ring_size=2)
        hub.publish(applied(*(ExecutionUpdate(i, 1, "X", (), None, {}) for i in range(1, 6))))
        sub, backlog = hub.subscribe("all", None, 3)
        assert [d["ordinal"] for d in backlog] == [4, 5]
        with pytest.raises(ResumeUnavailable):
            hub.subscribe("all", None, 1)
        hub.restart_at(10)  # a snapshot install: nothing below 10 can be served without a gap
        with pytest.raises(ResumeUnavailable):
            hub.subscribe("all", None, 5)
        assert hub.subscribe("all", None, 10)[1] == []

    asyncio.run(scenario())
