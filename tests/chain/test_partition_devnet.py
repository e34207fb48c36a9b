"""Issue 16: a partition with money moving. A 3-operator devnet (embedded chain, price feeds) with deposits and
trades that fill; the leader is cut off (TCP proxies on every Raft link) while trading and a deposit continue, then
healed. Every node ends with the same engine state — balances, positions, roots — every receipt names the entry
that executed it, and the deposit is credited exactly once."""

from __future__ import annotations

import asyncio
import collections

import aiohttp
from chainlab import FakePriceSource
from eth_account import Account
from partitions import Partitions
from polling import eventually

from ddx_offchain.chain.core.prices import PriceRules
from ddx_offchain.chain.price_feed import MarketFeed, PriceFeed
from ddx_offchain.client import DdxClient, RequestRefused, Trader
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.protocol.eip712 import Domain
from ddx_offchain.protocol.hashing import keccak256

ETHP = b"ETHP".ljust(32, b"\0")


def test_isolating_the_leader_while_money_moves(tmp_path):
    net: list[Partitions] = []

    async def proxies(configs) -> None:
        net.append(Partitions(configs))
        await net[0].start()

    def feed(_i, _cluster) -> PriceFeed:
        return PriceFeed([MarketFeed(ETHP, [FakePriceSource("ticker", 2_000 * DOLLAR)])], PriceRules(cadence_ms=1_000), poll_interval_s=0.2)

    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None,
                                      price_feeds=feed, before_start=proxies)
        try:
            keys = [keccak256(f"partition trader {k}".encode()) for k in range(2)]
            for key in keys:
                cluster.fund(Account.from_key(key).address, 100_000 * DOLLAR)
                cluster.deposit(key, 10_000 * DOLLAR)
            leader = await cluster.wait_for_leader()
            await eventually(lambda: leader.node.engine.engine.deposit_seq == 2, "both deposits credited")
            await eventually(lambda: leader.node.engine.engine.markets[ETHP].index == 2_000 * DOLLAR, "a price")
            domain = Domain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = {bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys}
            traders = [Trader(k, domain) for k in keys]
            results: list = []
            stop = asyncio.Event()

            async def trade(client: DdxClient, seller: Trader, buyer: Trader) -> None:
                while not stop.is_set():
                    for who, side in ((seller, 1), (buyer, 0)):  # crossing orders: fills
                        signed = who.place_order("ETHP", side, 10**5, 2_000 * DOLLAR)
                        try:
                            results.append((signed, await client.submit(signed)))
                        except RequestRefused as exc:
                            results.append((signed, exc))

            async with DdxClient(cluster.api_urls, domain, operators, retries=60) as client:
                task = asyncio.create_task(trade(client, traders[0], traders[1]))
                while len(results) < 20:
                    await asyncio.sleep(0.05)
                old = cluster.nodes.index(leader) + 1
                net[0].split({old}, {1, 2, 3} - {old})
                cluster.deposit(keys[0], 1_000 * DOLLAR)  # lands while the leader is cut off
                survivors = [n for i, n in enumerate(cluster.nodes, start=1) if i != old]

                async def new_leader():
                    return next((n for n in survivors if n.node.sequencer.is_leader()), None)

                await eventually(new_leader, "a leader on the majority side", timeout_s=30)
                before = len(results)
                await eventually(lambda: len(results) >= before + 20, "receipts while partitioned", timeout_s=30)
                net[0].heal()
                await eventually(lambda: all(n.node.engine.engine.deposit_seq == 3 for n in cluster.nodes),
                                 "the third deposit on every node", timeout_s=30)
                stop.set()
                await task
                for k, (signed, outcome) in enumerate(results):
                    if isinstance(outcome, Exception):
                        assert outcome.reason in ("outcome_unknown", "unreachable", "not_sequenced", "no_leader"), outcome
                        results[k] = (signed, await client.submit(signed))

            def converged():
                engines = [n.node.engine.engine for n in cluster.nodes]
                indexes = {n.node.service.machine.next_request_index for n in cluster.nodes}
                return len(indexes) == 1 and len({e.state_root() for e in engines}) == 1

            await eventually(converged, "identical engine state on every node", timeout_s=60)
            engines = [n.node.engine.engine for n in cluster.nodes]
            balances = [sorted((a.trader, a.collateral) for a in e.accounts.values()) for e in engines]
            assert balances[0] == balances[1] == balances[2]
            positions = [sorted((k, p.size) for k, p in e.markets[ETHP].positions.items()) for e in engines]
            assert positions[0] == positions[1] == positions[2] and positions[0]  # trades filled
            trader0 = bytes.fromhex(Account.from_key(keys[0]).address[2:])
            deposited = sum(a.collateral for a in engines[0].accounts.values() if a.trader == trader0)
            assert deposited != 10_000 * DOLLAR  # the third deposit and the fills moved it
            node = cluster.nodes[0].node
            last = node.service.machine.next_request_index - 1
            await eventually(lambda: node.history.persisted_request_index >= last, "history written")
            log = []
            async with aiohttp.ClientSession() as http:
                for first in range(1, last + 1, 100):
                    params = {"from": str(first), "to": str(min(last, first + 99))}
                    async with http.get(f"{cluster.api_urls[0]}/v1/requests", params=params) as resp:
                        log += (await resp.json())["entries"]
            assert len(log) == last
            by_index = {int(e["requestIndex"]): e for e in log}
            sequenced = collections.Counter(e.get("requestHash") for e in log if e["status"] == "sequenced")
            for signed, receipt in results:
                h = "0x" + signed.request_hash.hex()
                assert by_index[receipt.request_index]["requestHash"] == h and sequenced[h] == 1
        finally:
            await cluster.stop()
            if net:
                await net[0].close()

    asyncio.run(scenario())
