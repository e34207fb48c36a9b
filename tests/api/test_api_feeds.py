"""WebSocket feeds (snapshot, ordered updates, gap-free resume) and the REST history/state/ops endpoints."""

from __future__ import annotations

import asyncio
import json
from importlib import resources

from apihelpers import make_node, running, signed_order

from ddx_offchain.protocol.eip712 import address_of, checksum_address

ALICE = b"\xa1" * 32
BOB = b"\xb0" * 32


def run(coro):
    return asyncio.run(coro)


async def submit(client, key, nonce, **kw):
    resp = await client.post("/v1/requests", json=signed_order(key, nonce, **kw).to_json())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def receive(ws, n):
    return [json.loads((await asyncio.wait_for(ws.receive(), 5)).data) for _ in range(n)]


def test_trader_feed_snapshot_then_only_that_traders_updates_in_order():
    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            await submit(client, ALICE, 1)
            alice = checksum_address(address_of(ALICE))
            ws = await client.ws_connect(f"/v1/ws?channel=trader&key={alice}")
            (snapshot,) = await receive(ws, 1)
            assert snapshot["type"] == "snapshot" and snapshot["ordinal"] == "1"
            assert len(snapshot["state"]["openOrders"]) == 1
            await submit(client, BOB, 1)
            await submit(client, ALICE, 2)
            await submit(client, ALICE, 3)
            updates = await receive(ws, 2)
            assert [u["ordinal"] for u in updates] == ["3", "4"]
            assert all(u["type"] == "update" and u["traders"] == [alice] for u in updates)  # EIP-55, as in every view
            await ws.close()

    run(scenario())


def test_resume_from_an_ordinal_is_gap_free_from_ring_and_from_history(tmp_path):
    async def scenario():
        node, _ = make_node(history_path=tmp_path / "h.sqlite")
        node.feeds.ring_size = 3  # force old updates out of the ring (into history only)
        async with running(node) as client:
            ws = await client.ws_connect("/v1/ws?channel=all")
            (snapshot,) = await receive(ws, 1)
            assert snapshot["ordinal"] == "0"
            await submit(client, ALICE, 1)
            (first,) = await receive(ws, 1)
            await ws.close()  # disconnect; more happens meanwhile
            for nonce in range(2, 10):
                await submit(client, BOB if nonce % 2 else ALICE, nonce)
            node.history.flush()
            await submit(client, ALICE, 10)  # trims the ring now that history holds the rest
            assert len(node.feeds._ring) <= 4
            ws = await client.ws_connect(f"/v1/ws?channel=all&from={first['ordinal']}")
            resumed = await receive(ws, 9)
            assert [u["ordinal"] for u in resumed] == [str(n) for n in range(2, 11)]
            await ws.close()
            resp = await client.get("/v1/updates?after=4&limit=3")
            assert [u["ordinal"] for u in (await resp.json())["updates"]] == ["5", "6", "7"]

    run(scenario())


def test_resume_errors_are_explicit():
    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            ws = await client.ws_connect("/v1/ws?channel=all&from=99")
            (msg,) = await receive(ws, 1)
            assert msg == {"type": "error", "error": "bad_ordinal", "detail": msg["detail"]}
            resp = await client.get("/v1/ws?channel=trader&key=0x12")
            assert resp.status == 400 and (await resp.json())["error"] == "bad_query"

    run(scenario())


def test_market_feed_book_and_trader_views():
    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            market = "0x" + b"ETHP".ljust(32, b"\x00").hex()
            ws = await client.ws_connect(f"/v1/ws?channel=market&key={market}")
            (snapshot,) = await receive(ws, 1)
            assert snapshot["state"]["bids"] == []
            await submit(client, ALICE, 1, price=99)
            (update,) = await receive(ws, 1)
            assert update["market"] == market
            book = await (await client.get(f"/v1/books/{market}")).json()
            assert book["bids"] == [["99", "1"]] and book["lastOrdinal"] == "1"
            alice = "0x" + address_of(ALICE).hex()
            orders = await (await client.get(f"/v1/traders/{alice}/openOrders")).json()
            assert orders["openOrders"][0]["price"] == "99"
            missing = await client.get("/v1/books/0x" + "ff" * 32)
            assert missing.status == 404
            no_feed = await client.get("/v1/ws?channel=market&key=0x" + "ff" * 32)
            assert no_feed.status == 404 and (await no_feed.json())["error"] == "unknown_market"

    run(scenario())


def test_request_log_by_index_range(tmp_path):
    async def scenario():
        node, _ = make_node(history_path=tmp_path / "h.sqlite")
        async with running(node) as client:
            receipts = [await submit(client, ALICE, n) for n in range(1, 5)]
            node.history.flush()
            page = await (await client.get("/v1/requests?from=2&to=3")).json()
            assert [e["requestIndex"] for e in page["entries"]] == ["2", "3"]
            assert page["entries"][0]["requestHash"] == receipts[1]["requestHash"]
            assert page["entries"][0]["entry"].startswith("0x01")
            bad = await client.get("/v1/requests?from=0")
            assert bad.status == 400

    run(scenario())


def test_health_status_and_metrics_keep_the_two_clocks_apart():
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            assert (await client.get("/livez")).status == 200
            assert (await client.get("/readyz")).status == 200
            await submit(client, ALICE, 1)
            status = await (await client.get("/v1/status")).json()
            assert status["raft"]["isLeader"] is True and status["raft"]["commitIndex"] == 1
            assert status["checkpoint"] == {"state": "not_configured"}
            assert status["engine"]["nextRequestIndex"] == 2
            assert status["readiness"] == {"ready": True, "detail": "leader known and applied up to the commit index"}
            seq.applied = 0  # behind the commit index: not ready, but live
            ready = await client.get("/readyz")
            assert ready.status == 503 and "applied 0 of commit 1" in (await ready.json())["detail"]
            # the same answer inside /v1/status (200): what the web app reads, so a page never logs a 503
            assert (await (await client.get("/v1/status")).json())["readiness"] == await ready.json()
            assert (await client.get("/livez")).status == 200
            text = await (await client.get("/metrics")).text()
            assert 'ddx_requests_total{outcome="receipt"} 1.0' in text
            assert "ddx_raft_commit_index 1.0" in text and "ddx_time_to_receipt_seconds_bucket" in text
            class Recording:  # a chain side that has recorded epoch 0
                def status(self) -> dict:
                    return {"state": "recording", "lastRecordedEpoch": 0}

                def last_recorded_epoch(self) -> int:
                    return 0

            node.attach_checkpoints(Recording())
            status = await (await client.get("/v1/status")).json()
            assert status["checkpoint"]["state"] == "recording" and "lastRecordedEpoch" not in status["raft"]
            assert "ddx_checkpoint_lag_epochs 0.0" in await (await client.get("/metrics")).text()
            node.engine.current_epoch = 3  # three epochs frozen, none recorded yet: a lag of 3, not 0

            class NothingRecorded(Recording):
                def last_recorded_epoch(self) -> None:
                    return None

            node.attach_checkpoints(NothingRecorded())
            assert "ddx_checkpoint_lag_epochs 3.0" in await (await client.get("/metrics")).text()
            assert "ddx_apply_seconds_count 1.0" in text and 'ddx_applied_entries_total{status="sequenced"} 1.0' in text

    run(scenario())


def test_openapi_document_is_served_and_covers_every_route():
    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            served = await (await client.get("/v1/openapi.json")).json()
            checked_in = json.loads(resources.files("ddx_offchain.api").joinpath("openapi.json").read_text())
            assert served == checked_in
            routes = {
                (r.method.lower(), r.resource.canonical)
                for r in client.app.router.routes()
                if r.method != "HEAD"
            }
            documented = {(m, p) for p, ops in served["paths"].items() for m in ops}
            assert routes == documented

    run(scenario())


def test_checkpoint_progress_is_served_from_history(tmp_path):
    async def scenario():
        node, _ = make_node(history_path=tmp_path / "h.sqlite")
        node.history.record_checkpoint(1, b"\x11" * 32, "signed", {"signatures": 2, "of": 3})
        node.history.record_checkpoint(2, b"\x22" * 32, "built", {})
        node.history.flush()
        async with running(node) as client:
            doc = await (await client.get("/v1/checkpoints?limit=10")).json()
            assert [c["epoch"] for c in doc["checkpoints"]] == ["2", "1"]
            assert doc["checkpoints"][1] == {"epoch": "1", "root": "0x" + "11" * 32, "stage": "signed", "detail": {"of": 3, "signatures": 2}}
            assert doc["current"] == {"state": "not_configured"}

    run(scenario())


def test_openapi_request_schemas_match_the_protocol_types():
    from ddx_offchain.protocol.requests import REQUEST_TYPES, Action

    doc = json.loads(resources.files("ddx_offchain.api").joinpath("openapi.json").read_text())
    schemas = doc["components"]["schemas"]
    for name, cls in REQUEST_TYPES.items():
        message = schemas[name]["properties"]["message"]
        assert message["required"] == [field for _, field, _ in cls.FIELDS]
        assert schemas[name]["description"] == cls.TYPE_STRING
        for _, field, abi in cls.FIELDS:
            expected = {"address": "string", "bytes32": "string", "bool": "boolean", "Action[]": "array"}.get(abi, "string")
            assert message["properties"][field]["type"] == expected
    action = schemas["Action"]
    assert action["required"] == [field for _, field, _ in Action.FIELDS]
