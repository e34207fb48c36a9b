"""Issue 16: network partitions between operator processes (loopback TCP proxies on every Raft link): the leader
isolated from a 3-node cluster, and a 5-node cluster split 2|3 with the leader on the small side, under signed load
from several traders; then healed. Invariants afterwards: every receipt names the entry that executed its request,
each request executed exactly once, identical request logs and state roots on every node."""

from __future__ import annotations

import asyncio
import collections

import aiohttp
import pytest
from clusterhelpers import DOMAIN, ProcessCluster
from partitions import Partitions
from test_cluster import trade

from ddx_offchain.client import DdxClient, Trader

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("n, minority_size", [(3, 1), (5, 2)])
def test_partition_the_leader_away_then_heal(tmp_path, n, minority_size):
    cluster = ProcessCluster(tmp_path, n)

    async def scenario():
        net = Partitions(cluster.files.configs)
        await net.start()
        for i in range(1, n + 1):
            cluster.start(i)
        try:
            async with aiohttp.ClientSession() as session:
                leader = await cluster.wait_ready(session, timeout=60)
                others = [i for i in range(1, n + 1) if i != leader]
                minority = {leader, *others[: minority_size - 1]}
                majority = set(range(1, n + 1)) - minority
                traders = [Trader(bytes([0x70 + k]) * 32, DOMAIN) for k in range(4)]
                # clients know every node; the minority's answers fail over to the majority
                clients = [DdxClient(cluster.urls[k % n:] + cluster.urls[: k % n], DOMAIN, cluster.files.operators,
                                     retries=60) for k in range(4)]
                results: list = []
                stop = asyncio.Event()
                tasks = [asyncio.create_task(trade(c, t, stop, results)) for c, t in zip(clients, traders)]
                while len(results) < 20:
                    await asyncio.sleep(0.05)
                net.split(minority, majority)
                before = len(results)

                async def majority_leads():
                    for i in majority:
                        status = await cluster.status(session, i)
                        if status and status["raft"]["isLeader"]:
                            return i
                    return None

                new_leader = None
                for _ in range(300):
                    new_leader = await majority_leads()
                    if new_leader is not None and len(results) >= before + 20:
                        break
                    await asyncio.sleep(0.1)
                assert new_leader in majority, "the majority elected no leader"
                assert len(results) >= before + 20, "no receipts from the majority while partitioned"
                net.heal()
                while len(results) < before + 40:
                    await asyncio.sleep(0.05)
                stop.set()
                await asyncio.gather(*tasks)
                for k, (signed, outcome) in enumerate(results):  # unknown outcomes: the same bytes again
                    if isinstance(outcome, Exception):
                        assert outcome.reason in ("outcome_unknown", "unreachable", "not_sequenced", "no_leader"), outcome
                        results[k] = (signed, await clients[0].submit(signed))
                for client in clients:
                    await client.close()

                statuses = await cluster.wait_converged(session, timeout=60)
                assert len({s["engine"]["stateRoot"] for s in statuses.values()}) == 1, statuses
                assert all(s["history"]["missingRequests"] == 0 for s in statuses.values())  # no history gap
                last = next(iter(statuses.values()))["engine"]["nextRequestIndex"] - 1
                logs = {i: await cluster.request_log(session, i, last) for i in range(1, n + 1)}
                first = logs[1]
                for i in range(2, n + 1):
                    assert logs[i] == first, f"node {i}'s request log differs"
                by_index = {int(e["requestIndex"]): e for e in first}
                assert sorted(by_index) == list(range(1, last + 1))
                sequenced = collections.Counter(e["requestHash"] for e in first if e["status"] == "sequenced")
                for signed, receipt in results:
                    h = "0x" + signed.request_hash.hex()
                    entry = by_index[receipt.request_index]
                    assert entry["requestHash"] == h and entry["status"] == "sequenced"  # the receipt told the truth
                    assert sequenced[h] == 1  # executed exactly once
        finally:
            await net.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 240))
    finally:
        cluster.stop_all()
