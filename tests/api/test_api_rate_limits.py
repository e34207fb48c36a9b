"""Rate limits through a real aiohttp app: 429 with the bucket, Retry-After and retryAfterMs, per trader, per IP,
per request-channel connection and for reads; refusals counted in /metrics (node/rate_limits.py, docs/api.md)."""

from __future__ import annotations

import asyncio
import json

from apihelpers import make_node, running, signed_order

from ddx_offchain.node.rate_limits import BucketSpec, RateLimitSettings
from ddx_offchain.protocol.eip712 import address_of

ALICE, BOB, CAROL, MALLORY = b"\xa1" * 32, b"\xb0" * 32, b"\xc0" * 32, b"\x3a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 5_000_000

    def __call__(self) -> int:
        return self.now


def limited(clock: Clock, **buckets):
    settings = RateLimitSettings(**{"trader": None, "ip": None, "connection": None, "read": None} | buckets)
    return make_node(rate_limits=settings, rate_clock_ms=clock)


def run(coro):
    return asyncio.run(coro)


async def post(client, signed_or_doc):
    doc = signed_or_doc if isinstance(signed_or_doc, dict) else signed_or_doc.to_json()
    resp = await client.post("/v1/requests", json=doc)
    return resp.status, await resp.json(), resp.headers


def test_a_trader_over_its_bucket_gets_429_with_the_exact_wait_then_passes_after_it():
    async def scenario():
        clock = Clock()
        node, seq = limited(clock, trader=BucketSpec(2, 3))
        async with running(node) as client:
            assert (await post(client, signed_order(ALICE, 1)))[0] == 200
            assert (await post(client, signed_order(ALICE, 2)))[0] == 200
            status, body, headers = await post(client, signed_order(ALICE, 3))
            assert status == 429
            assert body["error"] == "rate_limited" and body["bucket"] == "trader"
            assert body["retryAfterMs"] == "334" and headers["Retry-After"] == "1"  # 1 token at 3 a second
            assert (await post(client, signed_order(BOB, 1)))[0] == 200  # another trader, its own bucket
            clock.now += 333
            assert (await post(client, signed_order(ALICE, 3)))[0] == 429
            clock.now += 1
            assert (await post(client, signed_order(ALICE, 3)))[0] == 200
            assert seq.proposed == 4  # nothing refused was proposed

    run(scenario())


def test_retry_after_is_whole_seconds_rounded_up():
    async def scenario():
        clock = Clock()
        node, _ = limited(clock, trader=BucketSpec(1, 1))
        async with running(node) as client:
            await post(client, signed_order(ALICE, 1))
            clock.now += 1
            status, body, headers = await post(client, signed_order(ALICE, 2))
            assert status == 429 and body["retryAfterMs"] == "999" and headers["Retry-After"] == "1"
            clock.now += 998
            status, body, headers = await post(client, signed_order(ALICE, 2))
            assert status == 429 and body["retryAfterMs"] == "1" and headers["Retry-After"] == "1"

    run(scenario())


def test_forged_requests_naming_a_trader_do_not_use_up_its_bucket():
    async def scenario():
        clock = Clock()
        node, _ = limited(clock, trader=BucketSpec(1, 1))
        async with running(node) as client:
            victim = address_of(ALICE)
            for nonce in range(1, 4):
                doc = signed_order(MALLORY, nonce).to_json()
                doc["message"]["trader"] = "0x" + victim.hex()  # names Alice, signed by Mallory
                status, body, _ = await post(client, doc)
                assert status == 401, body
            assert (await post(client, signed_order(ALICE, 1)))[0] == 200

    run(scenario())


def test_the_ip_bucket_refuses_before_the_body_is_read_and_covers_every_trader():
    async def scenario():
        clock = Clock()
        node, seq = limited(clock, ip=BucketSpec(2, 1), trader=BucketSpec(100, 100))
        async with running(node) as client:
            assert (await post(client, signed_order(ALICE, 1)))[0] == 200
            resp = await client.post("/v1/requests", data=b"{not json")  # malformed: refused, and costs a token
            assert resp.status == 400
            status, body, headers = await post(client, signed_order(BOB, 1))
            assert status == 429 and body["bucket"] == "ip" and body["retryAfterMs"] == "1000"
            resp = await client.post("/v1/requests", data=b"{not json")  # refused as over the limit, unparsed
            assert resp.status == 429 and (await resp.json())["bucket"] == "ip"
            resp = await client.post("/v1/requests", data=b"x" * 5000)  # unread: not even found too large
            assert resp.status == 429 and (await resp.json())["bucket"] == "ip"
            clock.now += 1000
            assert (await post(client, signed_order(CAROL, 1)))[0] == 200
            assert seq.proposed == 2

    run(scenario())


def test_reads_have_a_bucket_of_their_own_and_probes_are_not_limited():
    async def scenario():
        clock = Clock()
        node, _ = limited(clock, read=BucketSpec(2, 1), ip=BucketSpec(1, 1))
        async with running(node) as client:
            for _ in range(2):
                assert (await client.get("/v1/status")).status == 200
            resp = await client.get("/v1/status")
            body = await resp.json()
            assert resp.status == 429 and body["bucket"] == "read" and resp.headers["Retry-After"] == "1"
            for path in ("/livez", "/readyz", "/metrics"):
                assert (await client.get(path)).status in (200, 503)
            assert (await post(client, signed_order(ALICE, 1)))[0] == 200  # requests draw on the IP bucket
            metrics = await (await client.get("/metrics")).text()
            assert 'ddx_rate_limited_total{bucket="read"} 1.0' in metrics

    run(scenario())


def test_the_request_channel_limits_each_connection_with_the_same_error_object():
    async def scenario():
        clock = Clock()
        node, seq = limited(clock, connection=BucketSpec(2, 10))
        async with running(node) as client:
            ws = await client.ws_connect("/v1/ws/requests")
            for nonce in (1, 2):
                await ws.send_str(json.dumps({"id": f"a{nonce}", "request": signed_order(ALICE, nonce).to_json()}))
                assert "receipt" in json.loads((await ws.receive()).data)
            await ws.send_str(json.dumps({"id": "a3", "request": signed_order(ALICE, 3).to_json()}))
            doc = json.loads((await ws.receive()).data)
            assert doc == {"id": "a3", "error": "rate_limited", "detail": doc["detail"], "bucket": "connection",
                           "retryAfterMs": "100"}
            other = await client.ws_connect("/v1/ws/requests")  # a second connection has its own bucket
            await other.send_str(json.dumps({"id": "b", "request": signed_order(BOB, 1).to_json()}))
            assert "receipt" in json.loads((await other.receive()).data)
            clock.now += 200
            await ws.send_str(json.dumps({"id": "a3", "request": signed_order(ALICE, 3).to_json()}))
            assert "receipt" in json.loads((await ws.receive()).data)
            await ws.send_str("not json")  # a bad frame costs a token too
            assert json.loads((await ws.receive()).data)["error"] == "malformed_json"
            await ws.send_str("not json")
            assert json.loads((await ws.receive()).data)["error"] == "rate_limited"
            await ws.close()
            await other.close()
            assert seq.proposed == 4
            metrics = await (await client.get("/metrics")).text()
            assert 'ddx_rate_limited_total{bucket="connection"} 2.0' in metrics

    run(scenario())


def test_the_request_channel_also_draws_on_the_ip_bucket():
    async def scenario():
        clock = Clock()
        node, _ = limited(clock, ip=BucketSpec(1, 1), connection=BucketSpec(10, 10))
        async with running(node) as client:
            assert (await post(client, signed_order(ALICE, 1)))[0] == 200
            ws = await client.ws_connect("/v1/ws/requests")
            await ws.send_str(json.dumps({"id": "x", "request": signed_order(ALICE, 2).to_json()}))
            doc = json.loads((await ws.receive()).data)
            assert doc["error"] == "rate_limited" and doc["bucket"] == "ip"
            await ws.close()

    run(scenario())


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_buckets_and_the_header_is_ignored_otherwise():
    import ipaddress

    import aiohttp

    async def scenario(trusted):
        clock = Clock()
        settings = RateLimitSettings(trader=None, ip=BucketSpec(1, 1), connection=None, read=BucketSpec(2, 1),
                                     trusted_proxies=trusted)
        node, _ = make_node(rate_limits=settings, rate_clock_ms=clock)
        async with running(node) as client:  # the test client connects from 127.0.0.1
            def via(address):
                return {"X-Forwarded-For": f"6.6.6.6, {address}"}  # the left entry is the client's own claim

            statuses = []
            for nonce, address in enumerate(["198.51.100.1", "198.51.100.1", "198.51.100.2"], start=1):
                resp = await client.post("/v1/requests", json=signed_order(ALICE, nonce).to_json(), headers=via(address))
                statuses.append(resp.status)
            reads = [(await client.get("/v1/status", headers=via(a))).status
                     for a in ("198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.3")]
            try:  # opening the request channel costs a read, its frames the IP bucket
                ws = await client.ws_connect("/v1/ws/requests", headers=via("198.51.100.4"))
            except aiohttp.WSServerHandshakeError as refused:
                return statuses, reads, refused.status
            await ws.send_str(json.dumps({"id": "x", "request": signed_order(ALICE, 9).to_json()}))
            answer = json.loads((await ws.receive()).data)
            await ws.close()
            return statuses, reads, answer

    statuses, reads, answer = run(scenario(tuple(map(ipaddress.ip_network, ["127.0.0.1"]))))
    assert statuses == [200, 429, 200] and reads == [200, 200, 429, 200]  # one bucket per forwarded client
    assert answer["id"] == "x" and "error" not in answer  # a fresh client on the request channel: sequenced
    statuses, reads, answer = run(scenario(()))  # no trusted proxy: every request is 127.0.0.1's
    assert statuses == [200, 429, 429] and reads == [200, 200, 429, 429] and answer == 429
