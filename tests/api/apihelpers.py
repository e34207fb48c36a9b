"""A single operator with the in-memory sequencer behind a real aiohttp server, for API tests."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time

from aiohttp import web
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


# ---------------------------------------------------------------------------------------------- a real engine


class EngineOperator:
    """A node whose engine is the real one (one market, ETHP in USDC), fed operator commands as the chain side and
    the clock would sequence them, and trader requests as committed entries."""

    USDC = bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")

    def __init__(self, history_path=None, clock=now_ms) -> None:
        import itertools

        from ddx_offchain.engine import Engine, GenesisConfig
        from ddx_offchain.engine import commands as ec
        from ddx_offchain.node.engine_adapter import EngineAdapter

        self.ec = ec
        params = ec.MarketParams(
            market=market_id("ETHP"), token=self.USDC, tick=10_000, lot=1_000, size_decimals=6, initial_margin_bps=1_000,
            maintenance_margin_bps=500, maker_fee_bps=2, taker_fee_bps=5, liquidation_fee_bps=50,
            market_order_band_bps=500, premium_cap_bps=100, funding_cap_bps=75, funding_dampener=8,
            funding_interval_ms=3_600_000, max_order_notional=10**13, active=True,
        )
        adapter = EngineAdapter(Engine(GenesisConfig(tokens=(self.USDC,), markets=(params,))))
        self.node = OperatorNode(node_id=1, domain=DOMAIN, operator_key=OPERATOR_KEY, engine=adapter, view=adapter,
                                 history_path=history_path, now_ms=clock)
        self.sequencer = InMemorySequencer(self.node.service)
        self.node.attach(self.sequencer)
        self.ids = itertools.count(1)
        self.block = 0
        self.deposits = 0
        self.time = 0

    @property
    def engine(self):
        return self.node.engine.engine

    def command(self, command) -> None:
        from ddx_offchain.protocol.requests import ENTRY_OPERATOR_COMMAND

        self.sequencer.append(bytes([ENTRY_OPERATOR_COMMAND]) + self.ec.encode_command(command))

    def rid(self) -> bytes:
        return next(self.ids).to_bytes(32, "big")

    def deposit(self, trader: bytes, amount: int) -> None:
        self.block += 1
        self.deposits += 1
        deposit = self.ec.Deposit(self.deposits, trader, strategy_id("main"), self.USDC, amount)
        self.command(self.ec.ChainBlock(self.rid(), self.block, self.block.to_bytes(32, "big"), (deposit,)))

    def price(self, price: int) -> None:
        self.command(self.ec.IndexPrices(self.rid(), (self.ec.IndexPrice(market_id("ETHP"), price),)))

    def advance(self, ms: int) -> None:
        self.time += ms
        self.command(self.ec.AdvanceTime(self.rid(), self.time))

    def request(self, signed) -> None:
        from ddx_offchain.protocol.requests import encode_entry

        self.sequencer.append(encode_entry(signed))


class LiveNode:
    """The API on a real socket, its event loop in a thread, so hypothesis can drive it synchronously."""

    def __init__(self, node=None) -> None:
        self.node, self.sequencer = make_node() if node is None else node
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(build_app(self.node))
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
