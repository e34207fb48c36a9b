"""The blocking SDK face (SyncDdxClient) against a live node with the real engine, from code that runs no loop."""

from __future__ import annotations

import itertools

from apihelpers import DOMAIN, OPERATOR, EngineOperator, LiveNode

from ddx_offchain.client import Trader
from ddx_offchain.client.sync import SyncDdxClient


def test_the_sync_client_submits_reads_and_streams_without_an_event_loop(tmp_path):
    op = EngineOperator(tmp_path / "history.sqlite")
    trader = Trader(b"\x71" * 32, DOMAIN)
    op.price(2_000_000_000)
    op.advance(1_000)
    op.deposit(trader.address, 10**12)
    live = LiveNode((op.node, op.sequencer))
    try:
        with SyncDdxClient([f"http://127.0.0.1:{live.port}"], DOMAIN, [OPERATOR]) as client:
            signed = trader.place_order("ETHP", 0, 1_000_000, 1_990_000_000, client_order_id="sync-1")
            receipt = client.submit(signed)  # blocks until the verified receipt
            assert receipt.sender == trader.address and receipt.operator == OPERATOR
            order = client.open_order(trader=trader.address, client_order_id="sync-1")
            assert order["orderHash"] == "0x" + signed.request_hash.hex()
            assert client.ticker("ETHP").index == 2_000_000_000
            kinds = [doc["kind"] for doc in itertools.islice(client.stream("trader", "0x" + trader.address.hex(),
                                                                           after=0), 3)]
            assert kinds and all(isinstance(k, str) for k in kinds)  # snapshot then updates, as async `stream`
    finally:
        live.stop()
