"""Issue 16: history must never keep a silent gap. A node counts the request indexes its history lacks (at start,
then periodically), says so in /v1/status, /readyz and `ddx_history_missing_requests`, and repairs them from a
peer's request log through the verified backfill."""

from __future__ import annotations

import asyncio
import sqlite3

from apihelpers import DOMAIN, make_node, running, signed_order
from fakes import RecordingEngine

from ddx_offchain.node.backfill import HistoryBackfill

KEY = b"\x51" * 32


def test_a_hole_in_history_is_reported_and_repaired_from_a_peer(tmp_path):
    async def scenario():
        honest, _ = make_node(history_path=tmp_path / "peer.sqlite")
        holey, _ = make_node(history_path=tmp_path / "holey.sqlite")
        requests = [signed_order(KEY, n).to_json() for n in range(1, 6)]
        async with running(honest) as peer, running(holey) as client:
            for doc in requests:  # both nodes apply the same log
                assert (await peer.post("/v1/requests", json=doc)).status == 200
                assert (await client.post("/v1/requests", json=doc)).status == 200
            honest.history.flush()
            holey.history.flush()
            assert await holey.check_history() == 0
            with sqlite3.connect(tmp_path / "holey.sqlite") as db:  # rows lost (a crash, a bad restore)
                db.execute("DELETE FROM requests WHERE request_index IN (2, 3)")
            assert await holey.check_history() == 2  # no peer configured: reported, not repairable
            status = await (await client.get("/v1/status")).json()
            assert status["history"]["missingRequests"] == 2 and status["history"]["lastCheck"]["upto"] == 5
            ready = await client.get("/readyz")
            assert ready.status == 503 and "history lacks 2" in (await ready.json())["detail"]
            assert "ddx_history_missing_requests 2.0" in await (await client.get("/metrics")).text()

            holey.backfill = HistoryBackfill(domain=DOMAIN, history=holey.history, make_engine=RecordingEngine,
                                             peer_urls=[str(peer.make_url("")).rstrip("/")])
            watcher = asyncio.ensure_future(holey.watch_history(every_s=3600))
            try:
                for _ in range(100):
                    if holey.history_missing == 0 and holey.history_checked and holey.history_checked["missing"] == 0:
                        break
                    await asyncio.sleep(0.05)
            finally:
                watcher.cancel()
            assert holey.history_missing == 0, holey.backfill.state
            assert holey.backfill.state["state"] == "done"
            page = await (await client.get("/v1/requests?from=1&to=5")).json()
            assert [e["requestIndex"] for e in page["entries"]] == ["1", "2", "3", "4", "5"]
            assert (await client.get("/readyz")).status == 200

    asyncio.run(scenario())
