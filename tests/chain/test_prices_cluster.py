"""On a real 4-operator cluster (threshold 3), each operator with its own price sources: honest prices are
sequenced by the leader and checkpointed; when the leader's sources lie, every other operator refuses to sign the
state that contains the lie, says why (status, metric), and no checkpoint of it is recorded."""

from __future__ import annotations

import asyncio

import aiohttp
from chainlab import FakePriceSource
from eth_account import Account
from polling import eventually

from ddx_offchain.chain.core.prices import PriceRules
from ddx_offchain.chain.price_feed import MarketFeed, PriceFeed
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.protocol.hashing import keccak256

ETHP = b"ETHP".ljust(32, b"\0")
RULES = PriceRules(min_sources=1, cadence_ms=500, move_bps=10, max_change_bps=500, tolerance_bps=50, window_ms=2_000)


def test_a_lying_leaders_prices_are_refused_by_the_quorum(tmp_path):
    sources = [FakePriceSource("ticker", 2_000 * DOLLAR) for _ in range(4)]

    def feed(i: int, _cluster) -> PriceFeed:
        return PriceFeed([MarketFeed(ETHP, [sources[i]])], RULES, poll_interval_s=0.2)

    async def scenario():
        cluster = await start_cluster(tmp_path, operators=4, epoch_interval_s=1.0, echo=lambda _: None, price_feeds=feed)
        try:
            key = keccak256(b"prices trader")
            cluster.fund(Account.from_key(key).address, 100 * DOLLAR)
            cluster.deposit(key, 10 * DOLLAR)  # a sequenced L1 block for the epochs to anchor
            leader = await cluster.wait_for_leader()
            engine = leader.node.engine.engine
            await eventually(lambda: engine.markets[ETHP].index == 2_000 * DOLLAR, "the honest price sequenced")
            priced_epoch = engine.epoch + 1  # the first frozen state containing it
            await eventually(
                lambda: (cluster.exchange.functions.latest_epoch().call() >= priced_epoch) or None,
                "a checkpoint of a state with the honest price recorded", timeout_s=60,
            )
            for chain in cluster.chains:
                assert chain.checkpointer.price_refusals == 0

            lying = cluster.nodes.index(leader)
            sources[lying].price = 1_500 * DOLLAR  # the leader's sources (or the leader) lie
            await eventually(lambda: engine.markets[ETHP].index < 2_000 * DOLLAR, "the lie sequenced")
            assert engine.markets[ETHP].index >= 1_900 * DOLLAR  # clamped: at most 5% per update
            lie_epoch = engine.epoch + 1
            honest = [c for i, c in enumerate(cluster.chains) if i != lying]

            def refused():
                return all(
                    any(e["epoch"] >= lie_epoch and e["stage"] == "refused" and "index price" in (e.get("reason") or "")
                        for e in c.status()["epochs"])
                    for c in honest
                ) or None

            await eventually(refused, "every honest operator refusing the state with the lie", timeout_s=60)
            for chain in honest:
                assert chain.checkpointer.price_refusals >= 1
                assert chain.status()["prices"]["mismatches"]
            assert cluster.chains[lying].checkpointer.price_refusals == 0  # its own sources agree with it
            await asyncio.sleep(3)  # epochs keep freezing; none with the lie gets a quorum
            assert cluster.exchange.functions.latest_epoch().call() < lie_epoch
            async with aiohttp.ClientSession() as http:
                url = cluster.api_urls[(lying + 1) % 4]
                async with http.get(f"{url}/metrics") as resp:
                    metrics = await resp.text()
            line = next(m for m in metrics.splitlines() if m.startswith("ddx_checkpoint_price_refusals_total"))
            assert float(line.split()[-1]) >= 1
        finally:
            await cluster.stop()

    asyncio.run(scenario())
