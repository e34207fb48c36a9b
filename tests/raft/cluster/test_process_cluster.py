"""Real processes: clusters of `python -m ddx_offchain.testing.raft_cluster.server` on loopback, a client proposing with
sessions while nodes are SIGKILLed, SIGSTOPped/SIGCONTed and restarted. At the end, with every fault healed,
every acknowledged proposal is in every node's committed log, applied exactly once, in one order, at the index
the client was told.

RAFT_CLUSTER_SECONDS (default 12) sets how long the faults go on; RAFT_CLUSTER_SEED picks the fault schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from ddx_offchain.raft.fsm import NO_CLIENT
from ddx_offchain.raft.logstore.segment import FRAME_HEADER
from ddx_offchain.testing.raft_cluster.control import ControlClient, ControlError
from ddx_offchain.testing.raft_cluster.localcluster import LocalCluster

CHAOS_SECONDS = float(os.environ.get("RAFT_CLUSTER_SECONDS", "12"))
KNOBS = {"tick_ms": 20, "election_ticks": 10, "proposal_timeout_ms": 3000, "snapshot_interval": 0}


class Worker:
    """One client session: proposes (client_id, 1), (client_id, 2), ... retrying each until acknowledged."""

    def __init__(self, cluster: LocalCluster, number: int, rng: random.Random) -> None:
        self.cluster = cluster
        self.client_id = b"client-%d" % number
        self.rng = rng
        self.acked: dict[int, int] = {}  # sequence -> index the cluster acknowledged
        self.target = 1
        self.connection: ControlClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        sequence = 0
        while not stop.is_set():
            sequence += 1
            payload = self.client_id + b":%d" % sequence
            while True:
                response = await self._attempt(payload, sequence)
                if response is not None:
                    self.acked[sequence] = response.index
                    break
                if stop.is_set():
                    return  # unacknowledged: it may or may not commit; either is allowed
            await asyncio.sleep(self.rng.uniform(0, 0.01))

    async def _attempt(self, payload: bytes, sequence: int):
        try:
            if self.connection is None:
                self.connection = await asyncio.wait_for(self.cluster.client(self.target), 1.0)
            return await asyncio.wait_for(self.connection.propose(payload, self.client_id, sequence), 4.0)
        except ControlError as exc:
            leader = exc.response.leader
            await self._switch(leader if leader else None)
        except (OSError, ConnectionError, asyncio.TimeoutError):
            await self._switch(None)
        await asyncio.sleep(0.05)
        return None

    async def _switch(self, target: int | None) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
        self.target = target if target else self.rng.choice(sorted(self.cluster.nodes))


async def chaos(cluster: LocalCluster, rng: random.Random, seconds: float) -> list[str]:
    """Random faults, never more than a minority of nodes down or paused at once, then heal everything."""
    size = len(cluster.nodes)
    events: list[str] = []
    faulty: dict[int, str] = {}
    # Every schedule starts by killing the leader, then pausing the (new) leader; the rest is random.
    forced_faults = ["SIGKILL", "SIGSTOP"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.4, 1.2))
        for node_id, fault in list(faulty.items()):
            if rng.random() < 0.5:
                if fault == "killed":
                    await asyncio.to_thread(cluster.start, node_id)
                    events.append(f"restart {node_id}")
                else:
                    cluster.resume(node_id)
                    events.append(f"SIGCONT {node_id}")
                del faulty[node_id]
        if len(faulty) < (size - 1) // 2:
            healthy = [n for n in cluster.nodes if n not in faulty]
            leader = None
            forced = forced_faults.pop(0) if forced_faults else None
            if forced is not None or rng.random() < 0.5:  # hit the leader (always at first): that is what hurts
                try:
                    leader = await cluster.wait_for_leader(timeout=1.0, among=healthy)
                except TimeoutError:
                    leader = None
            victim = leader or rng.choice(healthy)
            if forced == "SIGKILL" or (forced is None and rng.random() < 0.5):
                cluster.kill(victim)
                faulty[victim] = "killed"
                events.append(f"SIGKILL {victim}")
            else:
                cluster.pause(victim)
                faulty[victim] = "paused"
                events.append(f"SIGSTOP {victim}")
    for node_id, fault in faulty.items():
        if fault == "killed":
            await asyncio.to_thread(cluster.start, node_id)
            events.append(f"restart {node_id}")
        else:
            cluster.resume(node_id)
            events.append(f"SIGCONT {node_id}")
    return events


async def wait_converged(cluster: LocalCluster, at_least: int, timeout: float = 30.0) -> dict[int, dict]:
    deadline = time.monotonic() + timeout
    statuses: dict[int, dict | None] = {}
    while time.monotonic() < deadline:
        statuses = {n: await cluster.status(n) for n in cluster.nodes}
        if all(statuses.values()):
            applied = {s["applied_index"] for s in statuses.values()}
            commit = {s["commit_index"] for s in statuses.values()}
            if len(applied) == 1 and applied == commit and min(applied) >= at_least:
                return statuses  # type: ignore[return-value]
        await asyncio.sleep(0.1)
    raise AssertionError(f"cluster did not converge: {statuses}")


def check_logs(cluster: LocalCluster, workers: list[Worker]) -> int:
    logs = {n: cluster.committed_log(n) for n in cluster.nodes}
    reference = logs[1]
    for node_id, entries in logs.items():
        assert entries == reference, f"node {node_id}'s committed log differs from node 1's"
    # Replay the log through the session rule, independently of the code under test.
    first_application: dict[tuple[bytes, int], int] = {}
    applied_order: list[tuple[bytes, int]] = []
    latest: dict[bytes, int] = {}
    for index, envelope in reference:
        assert envelope.client_id != NO_CLIENT
        if envelope.sequence <= latest.get(envelope.client_id, 0):
            continue  # a retry of something already applied
        latest[envelope.client_id] = envelope.sequence
        first_application[(envelope.client_id, envelope.sequence)] = index
        applied_order.append((envelope.client_id, envelope.sequence))
    assert len(applied_order) == len(set(applied_order)), "something was applied twice"
    acknowledged = 0
    for worker in workers:
        for sequence, index in worker.acked.items():
            key = (worker.client_id, sequence)
            assert key in first_application, f"acknowledged {key} is missing from the committed log"
            assert first_application[key] == index, f"{key} acknowledged at {index}, applied at {first_application[key]}"
            acknowledged += 1
        # A client's requests are applied in its own order, with no gaps below what was acknowledged.
        sequences = [s for c, s in applied_order if c == worker.client_id]
        assert sequences == list(range(1, len(sequences) + 1))
    return acknowledged


def run_chaos(tmp_path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    cluster = LocalCluster(tmp_path, size, knobs=KNOBS)
    try:
        cluster.start_all()

        async def main() -> tuple[int, list[str], list[Worker]]:
            await cluster.wait_for_leader()
            workers = [Worker(cluster, number, random.Random(seed * 100 + number)) for number in range(6)]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
            events = await chaos(cluster, rng, CHAOS_SECONDS)
            await asyncio.sleep(1.0)  # let the clients get a few acknowledgements on the healed cluster
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            for worker in workers:
                if worker.connection is not None:
                    await worker.connection.close()
            highest = max((i for w in workers for i in w.acked.values()), default=0)
            statuses = await wait_converged(cluster, highest)
            assert len({s["fsm_digest"] for s in statuses.values()}) == 1, "state machines diverged"
            return highest, events, workers

        highest, events, workers = asyncio.run(main())
        for node_id in cluster.nodes:
            assert cluster.terminate(node_id) == 0, f"node {node_id} did not shut down cleanly"
        acknowledged = check_logs(cluster, workers)
        print(f"{size} nodes, seed {seed}: {acknowledged} acknowledged proposals checked; faults: {events}")
        assert acknowledged >= 50, f"only {acknowledged} proposals acknowledged during {events}"
        assert any(e.startswith("SIGKILL") for e in events) and any(e.startswith("SIGSTOP") for e in events), events
    except BaseException:
        print(f"replay: RAFT_CLUSTER_SEED={seed} pytest {__file__}")
        for node in cluster.nodes.values():
            log_path = node.directory / "node.log"
            if log_path.exists():
                print(f"--- node {node.node_id} log tail ---\n{log_path.read_text()[-2000:]}")
        raise
    finally:
        cluster.close()


@pytest.mark.parametrize("size", [3, 5])
def test_acknowledged_proposals_survive_kills_and_pauses(tmp_path: Path, size: int) -> None:
    seed = int(os.environ.get("RAFT_CLUSTER_SEED", str(size * 1000 + 7)))
    run_chaos(tmp_path, size, seed)


def test_corrupted_segment_stops_the_node_with_file_and_offset(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, 3, knobs=KNOBS)
    try:
        cluster.start_all()

        async def write_some() -> None:
            leader = await cluster.wait_for_leader()
            client = await cluster.client(leader)
            for i in range(20):
                await client.propose(b"entry %d" % i)
            await client.close()

        asyncio.run(write_some())
        for node_id in cluster.nodes:
            cluster.terminate(node_id)
        segment = sorted((cluster.nodes[2].data_dir / "wal").glob("*.wal"))[-1]
        data = bytearray(segment.read_bytes())
        offset = 8  # the first frame, followed by more: acknowledged data, not a torn tail
        data[offset + FRAME_HEADER.size + 2] ^= 0xFF
        segment.write_bytes(bytes(data))
        with pytest.raises(RuntimeError) as caught:
            cluster.start(2)
        assert cluster.nodes[2].process.returncode == 3
        message = str(caught.value)
        assert f"corrupt log segment {segment} at offset {offset}" in message
        assert segment.read_bytes() == bytes(data), "the damaged file is left as found"
    finally:
        cluster.close()
