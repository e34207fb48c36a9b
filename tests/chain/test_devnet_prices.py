"""`ddx devnet` (outside the demo) has index prices out of the box: a mock Chainlink aggregator per market on the
devnet's chain, read by every operator's feed, sequenced by the leader, followed when it moves, and orders fill
instead of being refused `no_price`."""

from __future__ import annotations

import asyncio

from eth_account import Account
from polling import eventually

from ddx_offchain.client.api import DdxClient
from ddx_offchain.client.signer import Trader
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.devnet.prices import FEED_DECIMALS, OracleFeeds
from ddx_offchain.protocol.eip712 import Domain as RequestDomain
from ddx_offchain.protocol.hashing import keccak256

ETHP = b"ETHP".ljust(32, b"\0")


def test_devnet_prices_come_from_the_mock_aggregator_and_orders_are_priced(tmp_path):
    feeds = OracleFeeds({"ETHP": 2_000})

    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None, price_feeds=feeds)
        try:
            leader = await cluster.wait_for_leader()
            engine = lambda: leader.node.engine.engine  # noqa: E731
            await eventually(lambda: engine().markets[ETHP].index == 2_000 * DOLLAR, "the aggregator's price sequenced")
            feeds.oracle.set_price("ETHP", 2_050 * 10**FEED_DECIMALS)
            await eventually(lambda: engine().markets[ETHP].index == 2_050 * DOLLAR, "the move followed")
            key = keccak256(b"devnet prices trader")
            cluster.fund(Account.from_key(key).address, 1_000 * DOLLAR)
            cluster.deposit(key, 500 * DOLLAR)
            await eventually(lambda: engine().deposit_seq == 1, "the deposit credited")
            domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
            async with DdxClient(cluster.api_urls, domain, operators) as client:
                receipt = await client.submit(Trader(key, domain).place_order("ETHP", 0, 10**5, 2_040 * DOLLAR))
                assert receipt.request_index > 0
                state = await client.trader_state(bytes.fromhex(Account.from_key(key).address[2:]))
            assert [o["price"] for o in state["openOrders"]] == [str(2_040 * DOLLAR)]  # priced, not refused no_price
            priced_epoch = engine().epoch + 1
            await eventually(lambda: cluster.exchange.functions.latest_epoch().call() >= priced_epoch or None,
                             "a checkpoint of a priced state recorded (the followers checked its prices)", timeout_s=60)
            assert all(c.checkpointer.price_refusals == 0 for c in cluster.chains)
        finally:
            await cluster.stop()

    asyncio.run(scenario())
