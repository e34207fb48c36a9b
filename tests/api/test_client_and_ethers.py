"""The trader SDK against a live API, and a request signed by ethers.js (an independent signer) being accepted."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from apihelpers import DOMAIN, OPERATOR, make_node, running

from ddx_offchain.client import BadReceipt, DdxClient, RequestRefused, Trader
from ddx_offchain.node.sequencer import SequencingError
from ddx_offchain.protocol.eip712 import address_of
from ddx_offchain.protocol.requests import SignedReceipt, request_from_json

REPO = Path(__file__).resolve().parents[2]
KEY = b"\x5e" * 32


def run(coro):
    return asyncio.run(coro)


def test_sdk_submits_verifies_retries_and_streams():
    async def scenario():
        node, seq = make_node()
        async with running(node) as server:
            url = str(server.make_url("/"))
            trader = Trader(KEY, DOMAIN)
            async with DdxClient(url, DOMAIN, {OPERATOR}) as client:
                first = trader.place_order("ETHP", 0, 5, 100)
                receipt = await client.submit(first)
                assert receipt.operator == OPERATOR and receipt.request_index == 1
                seq.fail_next = SequencingError("leader lost")  # the client retries the same bytes
                second = trader.place_order("ETHP", 1, 5, 101)
                assert (await client.submit(second)).request_index == 2
                assert len(node.engine.executed) == 2
                assert (await client.receipt(first)).raw == receipt.raw
                with pytest.raises(RequestRefused) as info:
                    await client.submit(trader.place_order("ETHP", 0, 5, 100, nonce=first.request.nonce + 10**12, order_type=3))
                assert info.value.reason == "bad_field"
                stream = client.stream("trader", "0x" + trader.address.hex())
                snapshot = await anext(stream)
                assert snapshot["type"] == "snapshot" and snapshot["ordinal"] == "2"
                await client.submit(trader.cancel_all())
                update = await asyncio.wait_for(anext(stream), 5)
                assert update["ordinal"] == "3" and update["data"]["command"] == "CancelAll"
                await stream.aclose()
                resumed = client.stream("all", after=1)
                assert [(await anext(resumed))["ordinal"] for _ in range(2)] == ["2", "3"]
                await resumed.aclose()
            async with DdxClient(url, DOMAIN, {address_of(b"\x01" * 32)}) as untrusting:
                with pytest.raises(BadReceipt):
                    await untrusting.submit(trader.create_strategy("alt"))

    run(scenario())


def test_nonces_are_unique_and_increasing():
    trader = Trader(KEY, DOMAIN, clock_ms=lambda: 1000)
    nonces = [trader.next_nonce() for _ in range(1000)]
    assert nonces == sorted(set(nonces))


def ethers(payload: dict) -> dict:
    out = subprocess.run(
        ["node", str(REPO / "tests" / "api" / "ethers_sign.mjs")],
        input=json.dumps(payload), capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    )
    return json.loads(out.stdout)


def test_request_signed_by_ethers_is_accepted():
    if shutil.which("node") is None or not (REPO / "node_modules" / "ethers").exists():
        pytest.fail("needs Node.js and `npm ci` at the repo root (the Makefile's install step)")
    trader = Trader(KEY, DOMAIN)
    ours = trader.place_order("ETHP", 0, 7, 123)
    typed = ours.request.typed_data(DOMAIN)
    signed_by_ethers = ethers({"privateKey": "0x" + KEY.hex(), "typedData": typed})
    assert signed_by_ethers["address"].lower() == "0x" + trader.address.hex()
    doc = ours.to_json() | {"signature": signed_by_ethers["signature"]}

    async def scenario():
        node, seq = make_node()
        async with running(node) as server:
            resp = await server.post("/v1/requests", json=doc)
            assert resp.status == 200, await resp.text()
            receipt = await resp.json()
            assert receipt["requestHash"] == "0x" + ours.request_hash.hex()
            assert node.engine.executed == [ours.request_hash]
            return receipt

    receipt_doc = run(scenario())
    # and ethers, given the receipt's typed data, recovers the operator that signed it
    receipt = SignedReceipt.from_json(receipt_doc)
    recovered = ethers({"typedData": receipt.receipt.typed_data(DOMAIN), "signature": receipt_doc["signature"]})
    assert recovered["address"].lower() == "0x" + OPERATOR.hex()
    request, signature, _ = request_from_json(doc)
    assert signature == ours.signature  # RFC 6979 on both sides: byte-identical


@pytest.mark.parametrize("kind", ["Batch", "ApproveAgent", "RevokeAgent", "ScheduleCancel", "Transfer", "PlaceTrigger",
                                  "PlaceTwap", "PlaceOrder"])
def test_the_new_request_types_signed_by_ethers_are_accepted(kind):
    """ethers signs the typed data (Batch: an array of Action structs) byte-identically and the node accepts it: each
    request type of issue 14, and PlaceOrder with its client order id and fill-or-kill."""
    from ddx_offchain.client import cancel_action, modify_action, place_action

    trader = Trader(KEY, DOMAIN)
    agent = address_of(b"\x61" * 32)
    ours = {
        "Batch": lambda: trader.batch([
            place_action("ETHP", 0, 7, 123), cancel_action("ETHP", b"\x42" * 32), modify_action("ETHP", b"\x43" * 32, 124, 8),
        ]),
        "ApproveAgent": lambda: trader.approve_agent(agent, 1_900_000_000_000, strategy="main"),
        "RevokeAgent": lambda: trader.revoke_agent(agent),
        "ScheduleCancel": lambda: trader.schedule_cancel(1_900_000_000_000, market="ETHP", strategy=None),
        "Transfer": lambda: trader.transfer("hedge", b"\x33" * 20, 5_000_000),
        "PlaceTrigger": lambda: trader.place_trigger("ETHP", 1, 1, 1_900_000_000, 0, attached=True, group="tpsl",
                                                     order_type=1, price=1_890_000_000, client_order_id="sl"),
        "PlaceTwap": lambda: trader.place_twap("ETHP", 0, 5_000_000, 600_000, 60_000, limit_price=2_010_000_000),
        "PlaceOrder": lambda: trader.place_order("ETHP", 0, 7, 123, order_type=4, client_order_id="c-1",
                                                 expiry_ms=0),
    }[kind]()
    signed_by_ethers = ethers({"privateKey": "0x" + KEY.hex(), "typedData": ours.request.typed_data(DOMAIN)})
    assert signed_by_ethers["signature"] == "0x" + ours.signature.hex()
    doc = ours.to_json() | {"signature": signed_by_ethers["signature"]}

    async def scenario():
        node, seq = make_node()
        async with running(node) as server:
            resp = await server.post("/v1/requests", json=doc)
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["requestHash"] == "0x" + ours.request_hash.hex()
            assert node.engine.executed == [ours.request_hash]

    run(scenario())


def test_request_channel_over_websocket():
    async def scenario():
        node, seq = make_node()
        async with running(node) as server:
            trader = Trader(KEY, DOMAIN)
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}) as client:
                async with client.request_channel() as channel:
                    signed = [trader.place_order("ETHP", k % 2, 5, 100 + k) for k in range(20)]
                    receipts = await asyncio.gather(*(channel.submit(s) for s in signed))
                    assert sorted(r.request_index for r in receipts) == list(range(1, 21))
                    assert [r.receipt.receipt.request_hash for r in receipts] == [s.request_hash for s in signed]
                    again = await channel.submit(signed[0])  # a retry: same receipt, no second execution
                    assert again.raw == receipts[0].raw and len(node.engine.executed) == 20
                    with pytest.raises(RequestRefused) as info:
                        await channel.submit(trader.place_order("ETHP", 0, 5, 0))  # limit order without a price
                    assert info.value.reason == "bad_field"
            ws = await server.ws_connect("/v1/ws/requests")
            for frame, reason in (("not json", "malformed_json"), ('{"id": "x"}', "bad_schema"), ('{"id": "y", "request": 5}', "bad_schema")):
                await ws.send_str(frame)
                doc = json.loads((await ws.receive()).data)
                assert doc["error"] == reason, doc
            await ws.close()
            assert len(seq.log) == 20

    run(scenario())


def test_client_from_a_deployment_manifest(tmp_path):
    from ddx_offchain.deployment.manifest import Manifest
    from ddx_offchain.protocol.eip712 import checksum_address

    manifest = Manifest(
        network="local", chain_id=31337, exchange=checksum_address(DOMAIN.verifying_contract), deployment_block=1,
        deployer=checksum_address(b"\x01" * 20), operators=(checksum_address(OPERATOR),), threshold=1,
        operator_set_id=1, supermajority_required=True, escape_delay=86400, forced_deadline=3600, governance_delay=86400, collateral=(),
    )
    (tmp_path / "m.json").write_text(manifest.to_json())
    client = DdxClient.from_manifest("http://127.0.0.1:1", str(tmp_path / "m.json"))
    assert client.domain == DOMAIN and client.operators == frozenset({OPERATOR})
