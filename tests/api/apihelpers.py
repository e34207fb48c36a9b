"""A single operator with the in-memory sequencer behind a real aiohttp server, for API tests."""

from __future__ import annotations

import contextlib
import time

from aiohttp.test_utils import TestClient, TestServer
from fakes import InMemorySequencer, RecordingEngine

from ddx_offchain.api.server import build_app
from ddx_offchain.node.operator import OperatorNode
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.requests import PlaceOrder, market_id, sign_request, strategy_id

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
OPERATOR_KEY = b"\x0e" * 32
OPERATOR = address_of(OPERATOR_KEY)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_node(history_path=None, clock=now_ms, **node_options) -> tuple[OperatorNode, InMemorySequencer]:
    engine = RecordingEngine()
    node = OperatorNode(
        node_id=1,
        domain=DOMAIN,
        operator_key=OPERATOR_KEY,
        engine=engine,
        view=engine,
        history_path=history_path,
        leader_urls={2: "http://127.0.0.1:9/"},
        now_ms=clock,
        **node_options,
    )
    sequencer = InMemorySequencer(node.service)
    node.attach(sequencer)
    return node, sequencer


@contextlib.asynccontextmanager
async def running(node: OperatorNode, **app_options):
    client = TestClient(TestServer(build_app(node, **app_options)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def signed_order(key: bytes, nonce: int, *, ts: int | None = None, domain: Domain = DOMAIN, price: int = 100, side: int = 0):
    request = PlaceOrder(
        address_of(key), strategy_id("main"), market_id("ETHP"), side, 0, price, 1, False, nonce, ts or now_ms()
    )
    return sign_request(request, domain, key)
