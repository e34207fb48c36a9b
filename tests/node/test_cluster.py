"""Three operators as separate processes on loopback: traders get verifiable receipts, every node reaches the
same state root, the leader is SIGKILLed mid-stream (never a receipt without execution, retries execute exactly
once), and a follower that fell behind the leader's log compaction catches up by snapshot."""

from __future__ import annotations

import asyncio
import collections
import random
import time

import aiohttp
import pytest
from clusterhelpers import DOMAIN, ProcessCluster

from ddx_offchain.client import DdxClient, RequestRefused, Trader
from ddx_offchain.protocol.eip712 import address_of

pytestmark = pytest.mark.slow


async def trade(client: DdxClient, trader: Trader, stop: asyncio.Event, results: list) -> None:
    """Send requests one after another until told to stop; record (signed, receipt or error)."""
    rng = random.Random(trader.address)
    while not stop.is_set():
        if rng.random() < 0.3:
            signed = trader.create_strategy(f"s{rng.randrange(10**9)}")
        else:
            signed = trader.place_order("ETHP", rng.randrange(2), 1_000 * rng.randrange(1, 50), 10_000 * rng.randrange(1_900, 2_100))
        try:
            results.append((signed, await client.submit(signed)))
        except RequestRefused as exc:
            results.append((signed, exc))


def test_process_cluster_receipts_leader_kill_and_snapshot_catch_up(tmp_path):
    cluster = ProcessCluster(tmp_path, 3, raft_overrides={"snapshot_interval": 40, "snapshot_keep_entries": 5})
    for i in (1, 2, 3):
        cluster.start(i)

    async def scenario():
        async with aiohttp.ClientSession() as session:
            leader = await cluster.wait_ready(session)
            traders = [Trader(bytes([0x40 + k]) * 32, DOMAIN) for k in range(4)]
            clients = [DdxClient(cluster.urls[k % 3:] + cluster.urls[: k % 3], DOMAIN, cluster.files.operators, retries=40) for k in range(4)]
            results: list = []
            stop = asyncio.Event()
            # a feed of everything, first served by the leader: it must fail over and resume without a gap
            watcher = DdxClient([cluster.urls[leader - 1]] + [u for u in cluster.urls if u != cluster.urls[leader - 1]], DOMAIN, cluster.files.operators)
            seen_ordinals: list[int] = []

            async def watch():
                async for doc in watcher.stream("all"):
                    seen_ordinals.append(int(doc["ordinal"]))

            watch_task = asyncio.create_task(watch())
            tasks = [asyncio.create_task(trade(c, t, stop, results)) for c, t in zip(clients, traders)]
            while sum(1 for _, r in results if not isinstance(r, Exception)) < 40:
                await asyncio.sleep(0.05)
            cluster.kill(leader)  # SIGKILL mid-stream: no goodbye, in-flight requests on it get no answer
            killed_at = len(results)
            while len(results) < killed_at + 40:
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*tasks)

            new_leader = await cluster.wait_ready(session)
            assert new_leader != leader
            # every refusal was an unknown outcome or a dead node: retrying the same bytes executes it exactly once
            for k, (signed, outcome) in enumerate(results):
                if isinstance(outcome, Exception):
                    assert outcome.reason in ("outcome_unknown", "unreachable", "not_sequenced", "no_leader"), outcome
                    results[k] = (signed, await clients[0].submit(signed))
            for client in clients:
                await client.close()

            for stale in cluster.files.root.glob(f"data{leader}/history.sqlite*"):
                stale.unlink()  # losing history loses no consensus state
            cluster.start(leader)  # back, behind a compacted log: it must be sent a snapshot
            statuses = await cluster.wait_converged(session, timeout=60)
            final_ordinal = statuses[new_leader]["engine"]["lastOrdinal"]
            deadline = time.monotonic() + 20
            while (not seen_ordinals or seen_ordinals[-1] < final_ordinal) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            watch_task.cancel()
            await watcher.close()
            # the "all" channel sees every ordinal: consecutive from the snapshot's, across the failover
            assert seen_ordinals == list(range(seen_ordinals[0], final_ordinal + 1)), seen_ordinals[:5]
            roots = {s["engine"]["stateRoot"] for s in statuses.values()}
            assert len(roots) == 1, statuses
            last = statuses[new_leader]["engine"]["nextRequestIndex"] - 1
            # it installed a snapshot with its history deleted: the part the snapshot skipped is backfilled from a
            # peer's request log, kept only because replaying it from genesis reproduced the snapshot
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with session.get(f"{cluster.urls[leader - 1]}/v1/status") as resp:
                    backfill = (await resp.json())["history"]["backfill"]
                if backfill["state"] in ("done", "failed"):
                    break
                await asyncio.sleep(0.1)
            assert backfill["state"] == "done", backfill
            logs = {i: await cluster.request_log(session, i, last) for i in (1, 2, 3)}
            assert logs[leader] == logs[new_leader]  # identical rows, snapshot-skipped part included
            for i in (1, 2, 3):
                log = logs[i]
                by_index = {int(e["requestIndex"]): e for e in log}
                assert sorted(by_index) == list(range(1, last + 1))
                sequenced = collections.Counter(e["requestHash"] for e in log if e["status"] == "sequenced")
                for signed, receipt in results:
                    h = "0x" + signed.request_hash.hex()
                    assert receipt.operator in cluster.files.operators
                    entry = by_index.get(receipt.request_index)
                    if entry is None:
                        continue
                    assert entry["requestHash"] == h and entry["status"] == "sequenced"  # the receipt told the truth
                    assert sequenced[h] == 1, (i, h)  # executed, exactly once
            assert statuses[leader]["raft"]["snapshotIndex"] > 0
            # the restarted node (history deleted, state from a snapshot) still answers receipts in the window
            first_signed, first_receipt = results[0]
            async with DdxClient(cluster.urls[leader - 1], DOMAIN, cluster.files.operators) as fresh:
                again = await fresh.receipt(first_signed)
            assert again.request_index == first_receipt.request_index and again.epoch == first_receipt.epoch
            assert again.operator == address_of(cluster.files.operator_keys[leader - 1])  # signed by that node
            assert len(results) >= 80

    try:
        asyncio.run(asyncio.wait_for(scenario(), 150))
    finally:
        cluster.stop_all()


def test_all_killed_after_a_snapshot_then_a_staggered_restart_leaves_no_history_gap(tmp_path):
    """Issue 16, item 1: every node SIGKILLed after snapshots landed; the first node back (its history lost) tries to
    backfill the rows below its snapshot from peers that are still down. It must retry until they return and end
    with a whole history, the same as theirs — not `backfill: failed` with silent gaps."""
    cluster = ProcessCluster(tmp_path, 3, raft_overrides={"snapshot_interval": 30, "snapshot_keep_entries": 5})
    for i in (1, 2, 3):
        cluster.start(i)

    async def scenario():
        async with aiohttp.ClientSession() as session:
            await cluster.wait_ready(session)
            traders = [Trader(bytes([0x30 + k]) * 32, DOMAIN) for k in range(3)]
            async with DdxClient(cluster.urls, DOMAIN, cluster.files.operators, retries=20) as client:
                for n in range(90):
                    await client.submit(traders[n % 3].create_strategy(f"s{n}"))
            statuses = await cluster.wait_converged(session)
            assert all(s["raft"]["snapshotIndex"] > 0 for s in statuses.values())
            last = statuses[1]["engine"]["nextRequestIndex"] - 1
            for i in (1, 2, 3):
                cluster.kill(i)  # all at once, no goodbye
            for stale in cluster.files.root.glob("data1/history.sqlite*"):
                stale.unlink()  # node 1 comes back first, without the rows its snapshot skips
            cluster.start(1)

            async def backfill_of_1():
                status = await cluster.status(session, 1)
                return None if status is None else status["history"]["backfill"]

            deadline = time.monotonic() + 30
            while True:  # its peers are down: the backfill fails, and is retried
                backfill = await backfill_of_1()
                if backfill and backfill.get("attempts", 0) >= 1:
                    break
                assert time.monotonic() < deadline, backfill
                await asyncio.sleep(0.1)
            assert backfill["state"] == "failed" and backfill["retryInSeconds"] > 0
            cluster.start(2)
            cluster.start(3)
            await cluster.wait_ready(session, timeout=60)
            deadline = time.monotonic() + 90
            while True:
                backfill = await backfill_of_1()
                if backfill and backfill["state"] == "done":
                    break
                assert time.monotonic() < deadline, backfill
                await asyncio.sleep(0.2)
            statuses = await cluster.wait_converged(session, timeout=60)
            assert statuses[1]["history"]["missingRequests"] == 0
            logs = {i: await cluster.request_log(session, i, last) for i in (1, 2, 3)}
            assert logs[1] == logs[2] == logs[3] and len(logs[1]) == last  # no gap, identical rows

    try:
        asyncio.run(asyncio.wait_for(scenario(), 200))
    finally:
        cluster.stop_all()


def test_process_cluster_with_signatures_checked_off_the_loop_and_adaptive_inline_writes(tmp_path):
    """The two request-path options on (api.admission_threads, raft.inline_write_below_ms): receipts verify, a
    request with a forged signature gets the same typed refusal and changes nothing, every node ends at the same
    state root."""
    cluster = ProcessCluster(tmp_path, 3, raft_overrides={"inline_write_below_ms": 1000.0},
                             api_overrides={"admission_threads": 2})
    for i in (1, 2, 3):
        cluster.start(i)

    async def scenario():
        async with aiohttp.ClientSession() as session:
            leader = await cluster.wait_ready(session)
            alice, mallory = Trader(b"\x51" * 32, DOMAIN), Trader(b"\x52" * 32, DOMAIN)
            async with DdxClient(cluster.urls, DOMAIN, cluster.files.operators, retries=40) as client:
                requests = [alice.create_strategy(f"s{k}") for k in range(10)]
                receipts = await asyncio.gather(*(client.submit(signed) for signed in requests))
                assert sorted(r.request_index for r in receipts) == sorted({r.request_index for r in receipts})
                assert all(r.operator in cluster.files.operators for r in receipts)
                before = await cluster.wait_converged(session)
                bad = alice.create_strategy("bad")
                doc = bad.to_json()
                doc["signature"] = mallory.create_strategy("bad").to_json()["signature"]
                async with session.post(f"{cluster.urls[leader - 1]}/v1/requests", json=doc) as resp:
                    body = await resp.json()
                assert (resp.status, body["error"]) == (401, "signer_mismatch"), body
                after = await cluster.wait_converged(session)
                roots = {s["engine"]["stateRoot"] for s in after.values()}
                assert len(roots) == 1
                assert {s["engine"]["stateRoot"] for s in before.values()} == roots  # the refusal changed nothing

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        cluster.stop_all()
