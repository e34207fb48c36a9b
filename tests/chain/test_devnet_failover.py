"""On a real 3-operator cluster (threshold 3): the leader dies; the new leader's watcher resumes from the log and
credits the next deposit exactly once; the epoch's checkpoint stalls (2 of 3 signatures) and the status says so,
while trading goes on with receipts."""

from __future__ import annotations

import asyncio

import aiohttp
from eth_account import Account

from ddx_offchain.client.api import DdxClient
from ddx_offchain.client.signer import Trader
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.engine.commands import BUY, IndexPrice, IndexPrices, encode_command, name32
from ddx_offchain.protocol.eip712 import Domain as RequestDomain
from ddx_offchain.protocol.hashing import keccak256
from polling import eventually




def test_leader_loss_resumes_ingestion_and_a_stalled_checkpoint_does_not_stop_trading(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            key = keccak256(b"failover trader")
            trader = Account.from_key(key).address
            cluster.fund(trader, 100 * DOLLAR)
            cluster.deposit(key, 10 * DOLLAR)
            first = await cluster.wait_for_leader()
            await eventually(lambda: first.node.engine.engine.deposit_seq == 1, "the first deposit credited")
            await eventually(lambda: cluster.chains[0].checkpointer.progress.last_recorded(), "a first checkpoint")

            index = cluster.nodes.index(first)
            await cluster.stop_operator(index)
            survivors = [r for i, r in enumerate(cluster.nodes) if i not in cluster.stopped]
            second = await cluster.wait_for_leader()
            assert second is not first
            cluster.deposit(key, 20 * DOLLAR)
            for running in survivors:
                await eventually(lambda r=running: r.node.engine.engine.deposit_seq == 2, "the second deposit on every survivor")
                account = [a for a in running.node.engine.engine.accounts.values() if a.trader == bytes.fromhex(trader[2:])]
                assert [a.collateral for a in account] == [30 * DOLLAR]  # each deposit credited exactly once

            # a new epoch freezes, but 2 of 3 signatures are not a quorum at threshold 3
            frozen = second.node.engine.engine.epoch
            await eventually(lambda: second.node.engine.engine.epoch > frozen, "a new epoch", timeout_s=60)
            stalled_epoch = second.node.engine.engine.epoch
            survivor_chain = cluster.chains[cluster.nodes.index(second)]
            survivor_chain.checkpointer.progress.stall_after_s = 1.0  # the devnet's 15 s, shortened for the test

            def stalled():
                status = survivor_chain.status()
                entry = next((e for e in status["epochs"] if e["epoch"] == stalled_epoch), None)
                return status if entry and entry["stage"] == "signed" and status["state"] == "stalled" else None

            status = await eventually(stalled, "the checkpoint to show as stalled", timeout_s=30)
            entry = next(e for e in status["epochs"] if e["epoch"] == stalled_epoch)
            assert entry["signatures"] == 2 and entry["threshold"] == 3 and "2 of 3" in entry["waiting"]
            assert cluster.exchange.functions.latest_epoch().call() < stalled_epoch

            # the other clock keeps running: a price update and an order get sequenced with a receipt
            await second.node.service.propose_operator_command(
                encode_command(IndexPrices(keccak256(b"failover price"), (IndexPrice(name32("ETHP"), 2_000 * DOLLAR),)))
            )
            domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
            urls = [u for i, u in enumerate(cluster.api_urls) if i not in cluster.stopped]
            async with DdxClient(urls, domain, operators) as client:
                receipt = await client.submit(Trader(key, domain).place_order("ETHP", BUY, 10**6, 1_900 * DOLLAR))
            assert receipt.request_index > 0
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{urls[0]}/v1/status") as resp:
                    doc = await resp.json()
            assert doc["raft"]["leader"] is not None and doc["checkpoint"]["state"] in ("stalled", "collecting")
        finally:
            await cluster.stop()

    asyncio.run(asyncio.wait_for(scenario(), 240))  # a hang fails the test instead of CI
