"""FeedHub routing, bounds and resumes, without a server."""

from __future__ import annotations

import asyncio

import pytest

from ddx_offchain.engine.updates import Accepted
from ddx_offchain.node.feeds import FeedHub, ResumeUnavailable
from ddx_offchain.node.history import History
from ddx_offchain.node.state_machine import SEQUENCED, AppliedEntry, ExecutionUpdate

A, B, C = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20
M = b"M".ljust(32, b"\x00")


def update(ordinal: int, traders=(), market=None) -> ExecutionUpdate:
    return ExecutionUpdate(1, Accepted(ordinal, ordinal.to_bytes(32, "big"), "X"), traders, market)


def applied(*updates, index: int = 1) -> AppliedEntry:
    return AppliedEntry(index, index, b"\x01", SEQUENCED, 0, updates=list(updates))


def drain(sub) -> list[int]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait().ordinal)
    return out


def test_routing_by_trader_market_and_all():
    async def scenario():
        hub = FeedHub(None)
        subs = {name: hub.subscribe(*spec) for name, spec in
                {"a": ("trader", A), "b": ("trader", B), "c": ("trader", C), "m": ("market", M), "all": ("all", None)}.items()}
        hub.publish(applied(
            update(1, (A, B), M),  # maker and taker both see a fill
            update(2, (B,)),
            update(3, (), M),
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
        slow = hub.subscribe("all", None)
        hub.publish(applied(*(update(i) for i in range(1, 6))))
        assert slow.overflowed and drain(slow) == [1, 2]

    asyncio.run(scenario())


def test_ring_without_history_refuses_resumes_it_cannot_serve():
    async def scenario():
        hub = FeedHub(None, ring_size=2)
        hub.publish(applied(*(update(i) for i in range(1, 6))))
        sub = hub.subscribe("all", None)
        assert sub.start == 5 and [u.ordinal for u in await hub.backlog(3, sub)] == [4, 5]
        with pytest.raises(ResumeUnavailable) as refused:
            await hub.backlog(1, sub)
        assert refused.value.reason == "resume_unavailable"
        with pytest.raises(ResumeUnavailable, match="future"):
            await hub.backlog(6, sub)
        hub.restart_at(10)  # a snapshot install: nothing below 10 can be served without a gap
        sub = hub.subscribe("all", None)
        with pytest.raises(ResumeUnavailable):
            await hub.backlog(5, sub)
        assert await hub.backlog(10, sub) == []

    asyncio.run(scenario())


def _history_with(tmp_path, count: int, per_entry: int = 500) -> History:
    history = History(tmp_path / "h.sqlite")
    for index, first in enumerate(range(1, count + 1, per_entry), 1):
        history.record(applied(*(update(o, (A,) if o % 2 else (B,)) for o in range(first, min(count, first + per_entry - 1) + 1)), index=index))
    history.flush()
    assert history.persisted_ordinal == count
    return history


def test_a_resume_from_history_has_no_gap_and_no_repeat_while_updates_keep_coming(tmp_path):
    """Subscribe first, then backfill from history off the loop while new updates are published: the backlog
    and the queue together hold every update after the resume point exactly once, in order."""
    history = _history_with(tmp_path, 4_000)

    async def scenario():
        hub = FeedHub(history, ring_size=100)
        hub.publish(applied(*(update(o, (A,)) for o in range(4_001, 4_301)), index=100))  # ring: 4001.. (history lags)
        sub = hub.subscribe("all", None)
        backfill = asyncio.ensure_future(hub.backlog(10, sub))
        published = 4_300
        while not backfill.done():  # the apply path keeps publishing while history is read on a thread
            if published < 9_000:  # within the subscriber's queue bound
                published += 1
                hub.publish(applied(update(published, (B,)), index=published))
            await asyncio.sleep(0)
        sent, seen = 10, []
        for u in await backfill + [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]:
            if u.ordinal > sent:  # what the WebSocket sender does: drop repeats by ordinal
                seen.append(u.ordinal)
                sent = u.ordinal
        assert published > 4_301 and not sub.overflowed  # updates did arrive during the backfill
        assert seen == list(range(11, published + 1))

    try:
        asyncio.run(scenario())
    finally:
        history.close()


def test_a_large_resume_does_not_block_the_event_loop(tmp_path):
    """While 40,000 updates are read back from history, other tasks (heartbeats, apply) keep running."""
    history = _history_with(tmp_path, 40_000, per_entry=2_000)

    async def scenario():
        hub = FeedHub(history, ring_size=10)
        hub.publish(applied(update(40_001), index=99))
        ticks = 0

        async def heartbeat():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        beating = asyncio.ensure_future(heartbeat())
        await asyncio.sleep(0)
        before = ticks
        backlog = await hub.backlog(0, hub.subscribe("trader", A))
        during = ticks - before
        beating.cancel()
        assert [u.ordinal for u in backlog] == list(range(1, 40_001, 2)) + [] and during > 0

    try:
        asyncio.run(scenario())
    finally:
        history.close()
