"""Sequenced time: the leader sequences its clock, so the engine's clock (funding intervals) runs on a live cluster;
an operator refuses to sign a state whose sequenced time ran ahead of its own clock by more than the tolerance."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from polling import eventually

from ddx_offchain.chain.core.clock import ClockLedger, SequencedTime
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.protocol.hashing import keccak256


def test_only_a_time_ahead_of_this_operators_clock_is_refused():
    ledger = ClockLedger(tolerance_ms=10_000)
    ledger.record(SequencedTime(1, 1_010_000, 1_000_000))  # exactly the tolerance ahead: fine
    ledger.record(SequencedTime(1, 900_000, 1_000_000))  # behind: this operator may be catching up, fine
    assert ledger.verdict_for_epoch(5) is None and ledger.checked == 2
    ledger.record(SequencedTime(3, 1_010_001, 1_000_000))
    assert ledger.verdict_for_epoch(3) is None  # applied in epoch 3: part of epoch 4's state on
    mismatch = ledger.verdict_for_epoch(4)
    assert mismatch is not None and "10.0 s ahead" in mismatch.reason
    assert ledger.status()["lastOffsetMs"] == 10_001
    with pytest.raises(ValueError):
        ClockLedger(tolerance_ms=0)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_live_cluster_advances_time_and_refuses_a_leader_clock_far_ahead(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=4, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            key = keccak256(b"clock trader")
            cluster.fund(Account.from_key(key).address, 100 * DOLLAR)
            cluster.deposit(key, 10 * DOLLAR)
            leader = await cluster.wait_for_leader()
            engines = [n.node.engine.engine for n in cluster.nodes]
            # every engine's clock follows the leader's sequenced time, close to the wall clock
            await eventually(lambda: all(abs(e.time - now_ms()) < 5_000 for e in engines), "the engine clocks running")
            before = leader.node.engine.engine.time
            await asyncio.sleep(2.5)
            assert leader.node.engine.engine.time >= before + 1_000  # advanced about every second
            await eventually(lambda: cluster.exchange.functions.latest_epoch().call() >= 1, "a checkpoint", timeout_s=60)
            assert all(c.checkpointer.time_refusals == 0 for c in cluster.chains)

            liar = cluster.nodes.index(leader)
            cluster.chains[liar].wall_ms = lambda: now_ms() + 60_000  # its clock runs a minute ahead
            await eventually(lambda: leader.node.engine.engine.time > now_ms() + 30_000, "the skewed time sequenced")
            skewed_epoch = leader.node.engine.engine.epoch + 1
            honest = [c for i, c in enumerate(cluster.chains) if i != liar]

            def refused():
                return all(any(e["epoch"] >= skewed_epoch and e["stage"] == "refused" and "ahead" in (e.get("reason") or "")
                               for e in c.status()["epochs"]) for c in honest) or None

            await eventually(refused, "every honest operator refusing the state with the skewed time", timeout_s=60)
            assert all(c.checkpointer.time_refusals >= 1 for c in honest)
            await asyncio.sleep(2)
            assert cluster.exchange.functions.latest_epoch().call() < skewed_epoch
        finally:
            await cluster.stop()

    asyncio.run(scenario())
