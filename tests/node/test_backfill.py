"""History backfill after a snapshot install: a peer's request log is kept only if replaying it from genesis
reproduces the installed snapshot, with every signature re-verified and every stated outcome matching."""

from __future__ import annotations

import asyncio

import pytest
from fakes import RecordingEngine
from test_state_machine import DOMAIN, order

from ddx_offchain.api.render import request_doc
from ddx_offchain.node.backfill import (
    BackfillError,
    HistoryBackfill,
    SnapshotMark,
    parse_request_log_item,
    replay_request_log,
)
from ddx_offchain.node.history import History
from ddx_offchain.node.state_machine import ExchangeStateMachine
from ddx_offchain.protocol.requests import ENTRY_OPERATOR_COMMAND

COMMAND = bytes([ENTRY_OPERATOR_COMMAND]) + b"epoch"


def sequenced_log():
    """A log as the cluster applied it: orders, a duplicate, a forged entry (refused), an operator command."""
    machine = ExchangeStateMachine(DOMAIN, RecordingEngine())
    entries = [order(1), order(2), order(2), COMMAND, order(3)]
    forged = bytearray(order(4))
    forged[-2] ^= 1
    entries.append(bytes(forged))
    entries += [order(n) for n in range(5, 12)]
    items = []
    log_index = 3  # Raft's own entries (membership) come first and are not requests
    for entry in entries:
        log_index += 2
        items.append(request_doc(machine.apply(log_index, entry)))  # the request log as a peer serves it
    engine = machine.engine
    mark = SnapshotMark(machine.next_request_index, machine.last_log_index, engine.state_root(), engine.last_ordinal())
    return items, mark


def stated(items):
    """The items parsed as the backfill parses a peer's pages, lazily (a bad item raises when the replay reaches it)."""
    for expected, item in enumerate(items, 1):
        yield parse_request_log_item(item, expected)


def test_an_honest_log_reproduces_the_snapshot_and_regenerates_the_updates():
    items, mark = sequenced_log()
    kept = list(replay_request_log(DOMAIN, RecordingEngine(), stated(items), mark, keep_from=4))
    assert [request_doc(a) for a in kept] == items[3:]
    assert [u.ordinal for a in kept for u in a.updates] == list(range(3, mark.last_ordinal + 1))
    assert {a.status for a in kept} == {"sequenced", "refused"}


def _tampered(items, index, **changes):
    out = [dict(item) for item in items]
    out[index].update(changes)
    return out


@pytest.mark.parametrize(
    "tamper, why",
    [
        (lambda items: items[:3] + items[4:], "not contiguous"),
        (lambda items: items[:-1], "log ends"),
        (lambda items: _tampered(items, 3, entry="0x" + (bytes([ENTRY_OPERATOR_COMMAND]) + b"other").hex()), "reproduce"),
        # a forged signature stated as sequenced: the replay re-verifies it and refuses it
        (lambda items: _tampered(items, 5, status="sequenced", reason=None), "replay gives"),
        # a valid order the peer claims was refused
        (lambda items: _tampered(items, 0, status="refused", reason="bad_signature"), "replay gives"),
        (lambda items: _tampered(items, 2, duplicateOf=None, status="sequenced"), "replay gives"),
        (lambda items: _tampered(items, 4, logIndex=items[3]["logIndex"]), "out of order"),
        (lambda items: _tampered(items, 1, entry="0xzz"), "not hex"),
        (lambda items: _tampered(items, 1, requestIndex=2), "not contiguous"),  # a JSON number: integers are strings
    ],
)
def test_a_tampered_log_is_refused_and_nothing_is_yielded(tamper, why):
    items, mark = sequenced_log()
    replay = replay_request_log(DOMAIN, RecordingEngine(), stated(tamper(items)), mark, keep_from=1)
    with pytest.raises(BackfillError, match=why):
        next(replay)


class _Peer:
    """A peer's request-log endpoint over a real aiohttp server."""

    def __init__(self, items):
        self.items = items

    async def __aenter__(self):
        from aiohttp import web
        from aiohttp.test_utils import TestServer

        async def requests(request):
            first, last = int(request.query["from"]), int(request.query["to"])
            return web.json_response({"entries": [i for i in self.items if first <= int(i["requestIndex"]) <= last]})

        app = web.Application()
        app.add_routes([web.get("/v1/requests", requests)])
        self.server = TestServer(app)
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def __aexit__(self, *exc):
        await self.server.close()


def test_the_backfill_skips_a_lying_peer_and_fills_history_from_an_honest_one(tmp_path):
    items, mark = sequenced_log()
    history = History(tmp_path / "h.sqlite")
    replayer = ExchangeStateMachine(DOMAIN, RecordingEngine())
    for item in items[:2]:  # this node's own history before its gap: requests 1 and 2
        history.record(replayer.apply(int(item["logIndex"]), bytes.fromhex(item["entry"][2:])))
    history.flush()
    liar = _tampered(items, 6, status="refused", reason="expired")

    async def scenario():
        async with _Peer(liar) as bad, _Peer(items) as good:
            backfill = HistoryBackfill(domain=DOMAIN, history=history, make_engine=RecordingEngine, peer_urls=[bad, good])
            assert await backfill.run(mark)
            return backfill.state, good

    try:
        state, good = asyncio.run(scenario())
        assert state["state"] == "done" and state["from"] == 3 and state["source"] == good
        assert [request_doc(a) for a in history.requests(1, 100)] == items  # the same rows the peer serves
        assert [u.ordinal for u in history.updates(0, 100)] == list(range(1, mark.last_ordinal + 1))
    finally:
        history.close()


def test_without_an_honest_peer_history_is_left_untouched(tmp_path):
    items, mark = sequenced_log()
    history = History(tmp_path / "h.sqlite")

    async def scenario():
        async with _Peer(items[:-2]) as short:
            backfill = HistoryBackfill(domain=DOMAIN, history=history, make_engine=RecordingEngine, peer_urls=[short])
            return await backfill.run(mark), backfill.state

    try:
        done, state = asyncio.run(scenario())
        assert not done and state["state"] == "failed" and state["errors"]
        assert history.requests(1, 100) == []
    finally:
        history.close()


def test_a_failed_backfill_is_retried_until_history_is_whole(monkeypatch):
    """All nodes restarted together: the first to come up finds its peers down. The backfill must keep trying
    (with backoff) until a peer answers, never leave the gap for good (issue: permanent history gaps)."""
    from ddx_offchain.node import operator as operator_module
    from ddx_offchain.node.operator import OperatorNode

    monkeypatch.setattr(operator_module, "BACKFILL_RETRY_FIRST_S", 0.001)
    outcomes = iter([False, False, True])  # peers down twice, then up
    calls = []

    class FlakyPeers:
        state: dict = {"state": "idle"}

        async def run(self, mark):
            calls.append(mark)
            done = next(outcomes)
            self.state = {"state": "done" if done else "failed", "errors": [] if done else ["ConnectionRefusedError"]}
            return done

    node = OperatorNode(node_id=1, domain=DOMAIN, operator_key=b"\x0e" * 32, engine=RecordingEngine(),
                        view=RecordingEngine(), history_path=None)
    node.backfill = FlakyPeers()
    node.feeds.gap_below = 7
    mark = SnapshotMark(4, 9, b"\x00" * 32, 7)
    asyncio.run(node._backfill(mark))
    assert len(calls) == 3 and node.backfill.state["state"] == "done" and node.feeds.gap_below == 0
