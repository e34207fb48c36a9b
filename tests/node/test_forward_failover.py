"""Issue 16: requests a follower forwarded to a leader that then died used to hang for the whole proposal timeout
(~10 s) and end `outcome_unknown`, although a new leader existed within a second. The follower now forwards the
same entry again on a leader change: every request gets its receipt from the new leader, and executes once."""

from __future__ import annotations

import asyncio
import collections
import signal

import aiohttp
import pytest
from clusterhelpers import DOMAIN, ProcessCluster

from ddx_offchain.client import Trader

pytestmark = pytest.mark.slow


def test_requests_forwarded_to_a_frozen_leader_are_forwarded_to_the_next_one(tmp_path):
    cluster = ProcessCluster(tmp_path, 3)
    for i in (1, 2, 3):
        cluster.start(i)

    async def scenario():
        async with aiohttp.ClientSession() as session:
            leader = await cluster.wait_ready(session)
            follower = next(i for i in (1, 2, 3) if i != leader)
            # the leader stops dead (SIGSTOP): what the follower forwards to it is never replicated
            cluster.procs[leader].send_signal(signal.SIGSTOP)
            traders = [Trader(bytes([0x60 + k]) * 32, DOMAIN) for k in range(8)]
            signed = [t.create_strategy(f"failover{k}") for k, t in enumerate(traders)]

            async def submit(request) -> tuple[int, dict]:
                async with session.post(f"{cluster.urls[follower - 1]}/v1/requests", json=request.to_json(),
                                        timeout=aiohttp.ClientTimeout(total=60)) as resp:
                    return resp.status, await resp.json()

            answers = await asyncio.gather(*(submit(s) for s in signed))
            cluster.kill(leader)  # SIGKILL works on a stopped process
            for (status, doc), request in zip(answers, signed):
                assert status == 200, doc  # a receipt, not outcome_unknown after the proposal timeout
                assert doc["requestHash"] == "0x" + request.request_hash.hex()
            last = int(max(int(doc["requestIndex"]) for _, doc in answers))
            await cluster.wait(session, lambda st: st[follower]["history"]["persistedRequestIndex"] >= last,
                               "the follower's history written")
            status = await cluster.status(session, follower)
            log = await cluster.request_log(session, follower, last)
            sequenced = collections.Counter(e["requestHash"] for e in log if e["status"] == "sequenced")
            for (_, doc), request in zip(answers, signed):
                assert sequenced["0x" + request.request_hash.hex()] == 1  # executed exactly once
                entry = next(e for e in log if e["requestIndex"] == doc["requestIndex"])
                assert entry["requestHash"] == doc["requestHash"]  # the receipt names the entry that executed it
            assert status["raft"]["leader"] not in (None, leader)

    try:
        asyncio.run(scenario())
    finally:
        cluster.stop_all()
