"""The asyncio runtime with real disks and real TLS sockets, three or four nodes in one event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ddx_offchain.raft.certs import generate_operator_certificate
from ddx_offchain.raft.runtime import (
    NodeConfig,
    NodeStoppedError,
    NotLeaderError,
    ProposalDroppedByRaftError,
    ProposalTimeoutError,
    RaftNode,
)
from ddx_offchain.raft.transport import TlsMaterial
from ddx_offchain.testing.raft_cluster.localcluster import free_port  # below the ephemeral range: safe to restart on
from ddx_offchain.testing.raft_cluster.server import DigestStateMachine

IDS = (1, 2, 3, 4)
CERTS = {node: generate_operator_certificate(f"op{node}") for node in IDS}
PINNED = {node: cert.cert_pem for node, cert in CERTS.items()}


class Cluster:
    def __init__(self, base: Path, members=(1, 2, 3), **knobs) -> None:
        self.base = base
        self.members = members
        self.knobs = knobs
        self.ports = {node: free_port() for node in IDS}
        self.nodes: dict[int, RaftNode] = {}

    def config(self, node: int, join: bool = False) -> NodeConfig:
        return NodeConfig(
            node_id=node, data_dir=self.base / str(node), listen=("127.0.0.1", self.ports[node]),
            peers={p: ("127.0.0.1", port) for p, port in self.ports.items() if p != node},
            tls=TlsMaterial(CERTS[node].cert_pem, CERTS[node].key_pem, PINNED),
            initial_voters=tuple(self.members), join=join, tick_seconds=0.01, seed=node, **self.knobs,
        )

    async def start(self, node: int, join: bool = False) -> RaftNode:
        raft = RaftNode(self.config(node, join), DigestStateMachine())
        await raft.start()
        self.nodes[node] = raft
        return raft

    async def start_all(self) -> None:
        for node in self.members:
            await self.start(node)

    async def stop(self, node: int) -> None:
        await self.nodes.pop(node).shutdown()

    async def leader(self, timeout: float = 10.0) -> RaftNode:
        for _ in range(int(timeout / 0.01)):
            leaders = [n for n in self.nodes.values() if n.status().role == "LEADER"]
            if leaders:
                return leaders[0]
            await asyncio.sleep(0.01)
        raise AssertionError("no leader")

    async def converge(self, index: int, timeout: float = 10.0) -> None:
        for _ in range(int(timeout / 0.01)):
            if all(n.status().applied_index >= index for n in self.nodes.values()):
                return
            await asyncio.sleep(0.01)
        raise AssertionError({i: n.status().applied_index for i, n in self.nodes.items()})

    def machine(self, node: int) -> DigestStateMachine:
        return self.nodes[node].state.application

    async def close(self) -> None:
        for node in list(self.nodes):
            await self.stop(node)


def run(scenario, tmp_path: Path, **knobs):
    async def main():
        cluster = Cluster(tmp_path, **knobs)
        try:
            await asyncio.wait_for(scenario(cluster), 60)
        finally:
            await cluster.close()

    asyncio.run(main())


def test_proposals_commit_everywhere_in_one_order(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        results = await asyncio.gather(*(leader.propose(b"p%d" % i) for i in range(500)))
        indexes = [r.index for r in results]
        assert indexes == sorted(indexes) and len(set(indexes)) == 500
        await cluster.converge(indexes[-1])
        digests = {cluster.machine(n).digest for n in cluster.nodes}
        assert len(digests) == 1 and cluster.machine(1).count == 500
        status = leader.status()
        assert status.commit_index >= indexes[-1] and status.last_log_index >= indexes[-1]
        assert set(status.followers) == {1, 2, 3} - {status.id}
        assert all(f.match >= indexes[-1] and f.state == "REPLICATE" for f in status.followers.values())
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        forwarded = await follower.propose(b"via follower")  # forwarded to the leader, resolved here
        assert forwarded.index > indexes[-1]

    run(scenario, tmp_path)


def test_retried_request_is_applied_once_even_through_another_node(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        first = await leader.propose(b"order", client_id=b"trader-1", sequence=1)
        follower = next(n for n in cluster.nodes.values() if n is not leader)
        retry = await follower.propose(b"order", client_id=b"trader-1", sequence=1)
        assert retry.duplicate and retry.index == first.index and retry.result == first.result
        await cluster.converge(retry.index)
        assert {cluster.machine(n).count for n in cluster.nodes} == {1}

    run(scenario, tmp_path)


def test_restart_recovers_log_and_state(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        last = [await leader.propose(b"a%d" % i) for i in range(50)][-1].index
        await cluster.converge(last)
        victim = next(n for n in cluster.nodes if cluster.nodes[n] is not leader)
        digest = cluster.machine(victim).digest
        await cluster.stop(victim)
        more = await leader.propose(b"while down")
        await cluster.start(victim)
        await cluster.converge(more.index)
        assert cluster.nodes[victim].status().applied_index >= more.index
        assert cluster.machine(victim).count == 51 and cluster.machine(victim).digest != digest

    run(scenario, tmp_path)


def test_read_index_covers_every_acknowledged_write(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        written = await leader.propose(b"w")
        for node in cluster.nodes.values():
            index = await node.read_index()
            assert index >= written.index and node.status().applied_index >= index

    run(scenario, tmp_path)


def test_leadership_transfer(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        await leader.propose(b"x")
        target = next(n for n in cluster.nodes if cluster.nodes[n] is not leader)
        await cluster.converge(leader.status().commit_index)
        await leader.transfer_leadership(target)
        assert cluster.nodes[target].status().role == "LEADER" or (await cluster.leader()).config.node_id == target
        assert (await cluster.nodes[target].propose(b"y")).index > 0

    run(scenario, tmp_path)


def test_membership_learner_then_voter_then_removed(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        await leader.propose(b"before")
        newcomer = await cluster.start(4, join=True)  # empty log: learns the membership from the leader
        conf = await leader.add_learner(4)
        assert 4 in conf.learners and 4 not in conf.voters
        marker = await leader.propose(b"catch up")
        await cluster.converge(marker.index)
        for _ in range(500):  # the leader promotes a learner only once it has seen it match the commit index
            if leader.status().followers[4].match >= leader.status().commit_index:
                break
            await asyncio.sleep(0.01)
        conf = await leader.add_voter(4)
        assert 4 in conf.voters
        applied = await leader.propose(b"with four")
        await cluster.converge(applied.index)
        assert newcomer.status().voters == (1, 2, 3, 4)
        assert cluster.machine(4).digest == cluster.machine(leader.config.node_id).digest
        conf = await leader.remove_node(4)
        assert 4 not in conf.voters and 4 not in conf.learners
        after = await leader.propose(b"three again")
        assert after.index > applied.index

    run(scenario, tmp_path)


def test_snapshot_compaction_and_catch_up_by_snapshot(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        lagging = next(n for n in cluster.nodes if cluster.nodes[n] is not leader)
        await cluster.stop(lagging)
        last = None
        for start in range(0, 1200, 100):
            last = (await asyncio.gather(*(leader.propose(b"s%d" % i) for i in range(start, start + 100))))[-1]
        for _ in range(300):
            if leader.status().snapshot_index >= 1000:
                break
            await asyncio.sleep(0.01)
        status = leader.status()
        assert status.snapshot_index >= 1000 and status.first_log_index > 1, "the leader compacted its log"
        node = await cluster.start(lagging)
        await cluster.converge(last.index)
        assert node.status().snapshot_index >= 1000, "the lagging node was caught up with a snapshot"
        assert cluster.machine(lagging).digest == cluster.machine(leader.config.node_id).digest

    run(scenario, tmp_path, snapshot_interval=500, snapshot_keep_entries=50)


def test_no_quorum_means_no_commit(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        for node in [n for n in cluster.nodes if cluster.nodes[n] is not leader]:
            await cluster.stop(node)
        with pytest.raises((ProposalTimeoutError, ProposalDroppedByRaftError)):
            await leader.propose(b"alone", timeout=0.5)
        await leader.shutdown()
        with pytest.raises(NodeStoppedError):
            await leader.propose(b"stopped")

    run(scenario, tmp_path)


def test_uncommitted_proposal_times_out_with_the_default_timeout(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        leader = await cluster.leader()
        await leader.propose(b"ok")
        for node in [n for n in cluster.nodes if cluster.nodes[n] is not leader]:
            await cluster.stop(node)
        started = asyncio.get_running_loop().time()
        with pytest.raises(ProposalTimeoutError, match="outcome unknown"):
            await leader.propose(b"no quorum")  # appended by the leader, never acknowledged
        waited = asyncio.get_running_loop().time() - started
        assert 0.3 <= waited < 2.0

    run(scenario, tmp_path, proposal_timeout_seconds=0.3)


def test_without_a_leader_a_proposal_is_refused_at_once(tmp_path: Path) -> None:
    async def scenario(cluster: Cluster) -> None:
        lonely = await cluster.start(1)  # its two peers never come up: no election can succeed
        with pytest.raises(NotLeaderError) as caught:
            await lonely.propose(b"nobody to sequence this")
        assert isinstance(caught.value, ProposalDroppedByRaftError) and caught.value.leader == 0
        assert lonely.status().leader == 0

    run(scenario, tmp_path)


def test_adaptive_inline_writes_follow_the_measured_write_time_and_still_persist_before_send(tmp_path: Path) -> None:
    """With `inline_write_below_seconds`, a Ready is written on the loop while recent writes were fast and on
    the disk thread once they are slow; in both modes no APPEND leaves before its entries are written."""
    import time as clock

    slow = {"seconds": 0.0, "node": 0}  # the leader's writes are slowed (all nodes share this one event loop)

    async def scenario(cluster: Cluster) -> None:
        await cluster.start_all()
        violations: list[str] = []
        for raft in cluster.nodes.values():
            storage, transport = raft._storage, raft._transport
            written = {"last": storage.last_index()}
            write_batch, send = storage.write_batch, transport.send

            def timed_write(pending, write_batch=write_batch, written=written, node=raft.config.node_id):
                if slow["seconds"] and slow["node"] == node:
                    clock.sleep(slow["seconds"])
                write_batch(pending)
                if pending.entries:
                    written["last"] = max(written["last"], pending.entries[-1].index)

            def checked_send(messages, send=send, written=written, node=raft.config.node_id):
                for m in messages:
                    if m.entries and m.entries[-1].index > written["last"]:
                        violations.append(f"node {node} sent entry {m.entries[-1].index} before writing it")
                send(messages)

            storage.write_batch, transport.send = timed_write, checked_send
        leader = await cluster.leader()
        counters = leader.counters
        slow["node"] = leader.config.node_id
        # Fast writes (real fdatasync, far below the 25 ms threshold): inline.
        before_fsyncs, before_inline = counters.fsyncs, counters.inline_writes
        await asyncio.gather(*(leader.propose(b"fast %d" % i) for i in range(200)))
        assert counters.fsyncs > before_fsyncs
        assert counters.inline_writes - before_inline == counters.fsyncs - before_fsyncs
        # Slow writes (60 ms each): the average crosses the threshold and writes move to the disk thread.
        slow["seconds"] = 0.06
        for i in range(12):
            await leader.propose(b"slow %d" % i)
        assert counters.write_seconds_ewma > 0.025
        threaded_before = counters.fsyncs - counters.inline_writes
        await leader.propose(b"slow again")
        assert counters.fsyncs - counters.inline_writes > threaded_before
        # Fast again: the average decays below the threshold and writes come back inline.
        slow["seconds"] = 0.0
        for i in range(40):
            await leader.propose(b"fast again %d" % i)
        assert counters.write_seconds_ewma < 0.025
        inline_before = counters.inline_writes
        await leader.propose(b"inline again")
        assert counters.inline_writes > inline_before
        assert violations == []
        await cluster.converge(leader.status().commit_index)
        assert len({cluster.machine(n).digest for n in cluster.nodes}) == 1

    run(scenario, tmp_path, inline_write_below_seconds=0.025)
