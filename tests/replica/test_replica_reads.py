"""A public replica limits reads per client IP (its only traffic: it sequences nothing)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ddx_offchain.api.server import build_app
from ddx_offchain.daemon.replica import parse_read_limit
from ddx_offchain.deployment.genesis import example_genesis, parse_genesis
from ddx_offchain.node.rate_limits import BucketSpec
from ddx_offchain.protocol.eip712 import Domain
from ddx_offchain.replica.node import Replica, ReplicaFacade

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)


def make(tmp_path, read_limit, trusted_proxies=()):
    genesis = parse_genesis(example_genesis("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"))
    return Replica(domain=DOMAIN, genesis=genesis, data_dir=tmp_path, sources=["http://127.0.0.1:9"], rpc=None,
                   read_limit=read_limit, trusted_proxies=trusted_proxies)


def test_reads_beyond_the_bucket_are_refused_with_429_and_a_retry_time(tmp_path):
    async def scenario():
        client = TestClient(TestServer(build_app(ReplicaFacade(make(tmp_path, BucketSpec(2, 1))))))
        await client.start_server()
        try:
            statuses = [(await client.get("/v1/markets")).status for _ in range(2)]
            refused = await client.get("/v1/markets")
            body = await refused.json()
            assert statuses == [200, 200] and refused.status == 429
            assert body["error"] == "rate_limited" and body["bucket"] == "read" and refused.headers["Retry-After"] == "1"
            assert (await client.get("/readyz")).status in (200, 503)  # probes are never limited
        finally:
            await client.close()

    asyncio.run(scenario())


def test_behind_a_trusted_proxy_reads_are_counted_per_forwarded_client(tmp_path):
    from ddx_offchain.node.rate_limits import parse_trusted_proxies

    async def scenario():
        replica = make(tmp_path, BucketSpec(1, 1), parse_trusted_proxies(["127.0.0.0/8"]))
        client = TestClient(TestServer(build_app(ReplicaFacade(replica))))
        await client.start_server()
        try:
            return [(await client.get("/v1/markets", headers={"X-Forwarded-For": who})).status
                    for who in ("198.51.100.1", "198.51.100.1", "198.51.100.2")]
        finally:
            await client.close()

    assert asyncio.run(scenario()) == [200, 429, 200]


def test_the_read_limit_option_parses_or_refuses(tmp_path):
    assert parse_read_limit("50/10") == BucketSpec(50, 10)
    assert parse_read_limit("off") is None
    for bad in ("", "10", "0/1", "a/b", "10/-1"):
        with pytest.raises(ValueError):
            parse_read_limit(bad)
    assert make(tmp_path / "unlimited", None).node.rate_limiter is None


def test_a_replicas_info_names_the_operators_it_follows_for_the_web_app(tmp_path):
    import aiohttp

    from ddx_offchain.daemon.cluster_files import free_ports
    from ddx_offchain.daemon.replica import ReplicaProcess, ReplicaSettings

    genesis = parse_genesis(example_genesis("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"))
    (port,) = free_ports(1)
    sources = ("http://127.0.0.1:9/", "http://127.0.0.1:10/")
    settings = ReplicaSettings(domain=DOMAIN, genesis=genesis, data_dir=tmp_path, sources=sources,
                               listen=("127.0.0.1", port))

    async def scenario():
        process = ReplicaProcess(settings, rpc=None)
        await process.start()
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{process.url}/v1/info") as resp:
                info = await resp.json()
            assert info["replica"] is True and info["operator"] is None
            assert info["operators"] == [{"id": "1", "api": sources[0]}, {"id": "2", "api": sources[1]}]
        finally:
            await process.stop()

    asyncio.run(scenario())
