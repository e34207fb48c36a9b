"""Open orders found by their id or by the trader's client order id (GET /v1/orders…)."""

from __future__ import annotations

import asyncio

from apihelpers import running
from test_agents_and_batches import setup
from test_engine_adapter import T0

from ddx_offchain.api import render


def test_an_open_order_is_found_by_its_id_or_its_client_order_id_through_the_api():
    async def scenario():
        node, seq, adapter, alice, _, _, _ = setup()
        order = alice.place_order("ETHP", 1, 1_000_000, 2_100 * 10**6, client_order_id="mm-1", expiry_ms=T0 + 60_000)
        await node.service.submit(order.to_json())
        async with running(node) as client:
            by_id = await (await client.get(f"/v1/orders/0x{order.request_hash.hex()}")).json()
            query = {"trader": render.checksum_address(alice.address), "strategy": "main",
                     "clientOrderId": "0x" + b"mm-1".ljust(32, b"\x00").hex()}
            by_client = await (await client.get("/v1/orders", params=query)).json()
            assert by_id["orderHash"] == by_client["orderHash"] == "0x" + order.request_hash.hex()
            assert by_client["clientOrderId"] == query["clientOrderId"] and by_client["expiry"] == str(T0 + 60_000)
            missing = await client.get("/v1/orders", params=query | {"clientOrderId": "0x" + "00" * 31 + "01"})
            assert missing.status == 404
            bad = await client.get("/v1/orders", params={"trader": "0x12"})
            assert bad.status == 400
        stop = alice.place_trigger("ETHP", 1, 1, 1_900 * 10**6, 1_000_000, client_order_id="stop-1")
        await node.service.submit(stop.to_json())
        async with running(node) as client:  # a waiting trigger's client id names no open order (yet)
            query = {"trader": render.checksum_address(alice.address), "clientOrderId": "0x" + b"stop-1".ljust(32, b"\x00").hex()}
            assert (await client.get("/v1/orders", params=query)).status == 404

    asyncio.run(scenario())
