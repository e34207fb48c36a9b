"""Snapshots: compaction, InstallSnapshot to lagging followers, snapshot status reports, MemoryStorage rules."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.progress import ProgressState
from ddx_offchain.raft.core.raft import Raft
from ddx_offchain.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from ddx_offchain.raft.storage import (
    CompactedError,
    MemoryStorage,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)

from .cluster import Cluster, make_storage

MT = MessageType
VOTERS = ConfState(voters=(1, 2, 3))


def compact_leader(c: Cluster, leader: int) -> int:
    node = c.nodes[leader]
    applied = node.raft.raft_log.applied
    node.storage.create_snapshot(applied, node.conf_state, b"state@%d" % applied)
    node.storage.compact(applied)
    return applied


def test_lagging_follower_catches_up_through_a_snapshot():
    c = Cluster()
    c.campaign(1)
    c.isolate(3)
    for k in range(10):
        c.propose(1, b"p%d" % k)
    index = compact_leader(c, 1)
    assert c.nodes[1].storage.first_index() == index + 1
    c.heal()
    c.tick(1)  # heartbeat answer -> probe -> entries compacted -> SNAPSHOT
    snaps = [m for m in c.delivered if m.type == MT.SNAPSHOT]
    assert len(snaps) == 1 and snaps[0].to == 3 and snaps[0].snapshot.metadata.index == index
    c.nodes[1].node.report_snapshot(3, True)
    c.propose(1, b"after")
    node3 = c.nodes[3]
    assert node3.storage.snapshot().metadata.index == index
    assert node3.raft.raft_log.committed == c.raft(1).raft_log.committed
    assert node3.applied[-1].data == b"after"
    assert c.raft(1).tracker.progress[3].state == ProgressState.REPLICATE


def test_failed_snapshot_send_returns_to_probe_and_waits_for_a_heartbeat():
    c = Cluster()
    c.campaign(1)
    c.isolate(3)
    for k in range(5):
        c.propose(1, b"p%d" % k)
    compact_leader(c, 1)
    c.heal()
    c.drop_types.add(MT.SNAPSHOT)
    c.tick(1)
    pr = c.raft(1).tracker.progress[3]
    assert pr.state == ProgressState.SNAPSHOT and pr.is_paused()
    c.nodes[1].node.report_snapshot(3, False)
    assert pr.state == ProgressState.PROBE and pr.is_paused() and pr.pending_snapshot == 0
    c.drop_types.clear()
    c.tick(1)
    c.nodes[1].node.report_snapshot(3, True)
    c.tick(1)
    assert c.raft(3).raft_log.committed == c.raft(1).raft_log.committed


def test_snapshot_is_not_sent_to_an_inactive_follower():
    c = Cluster()
    c.campaign(1)
    c.isolate(3)
    for k in range(3):
        c.propose(1, b"p%d" % k)
    compact_leader(c, 1)
    r = c.raft(1)
    pr = r.tracker.progress[3]
    pr.recent_active = False
    pr.become_probe()
    pr.next = 1
    assert r._send_append(3) is False
    assert pr.state == ProgressState.PROBE


def follower(terms, commit) -> Raft:
    storage = make_storage((1, 2, 3), terms=terms, hard_state=HardState(term=2, commit=commit))
    return Raft(Config(id=2), storage)


def snapshot_at(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=index, term=term, conf_state=VOTERS), data=b"s")


def test_follower_restores_a_newer_snapshot_and_answers_with_its_index():
    f = follower([1, 1], 2)
    f.step(Message(type=MT.SNAPSHOT, from_=1, to=2, term=2, snapshot=snapshot_at(10, 2)))
    assert f.raft_log.committed == 10 and f.raft_log.last_index() == 10
    assert f.raft_log.unstable_snapshot() is not None
    assert f.msgs[-1].type == MT.APPEND_RESP and f.msgs[-1].index == 10


def test_follower_ignores_a_snapshot_behind_its_commit_index():
    f = follower([1, 1, 2, 2], 4)
    f.step(Message(type=MT.SNAPSHOT, from_=1, to=2, term=2, snapshot=snapshot_at(3, 2)))
    assert f.raft_log.unstable_snapshot() is None and f.raft_log.last_index() == 4
    assert f.msgs[-1].index == 4


def test_follower_holding_the_snapshot_entry_just_fast_forwards_its_commit():
    f = follower([1, 1, 2, 2, 2], 2)
    f.step(Message(type=MT.SNAPSHOT, from_=1, to=2, term=2, snapshot=snapshot_at(4, 2)))
    assert f.raft_log.unstable_snapshot() is None
    assert f.raft_log.committed == 4 and f.raft_log.last_index() == 5


def test_restart_from_snapshot_with_a_lagging_hard_state_keeps_the_snapshot_committed():
    storage = MemoryStorage()
    storage.apply_snapshot(snapshot_at(10, 2))
    storage.set_hard_state(HardState(term=2, commit=3))  # the crash kept the snapshot, lost the hard state
    r = Raft(Config(id=1, applied=10), storage)
    assert r.raft_log.committed == 10 and r.raft_log.applied == 10


# --- MemoryStorage ----------------------------------------------------------------------------------------------
def filled(n: int) -> MemoryStorage:
    s = MemoryStorage(VOTERS)
    s.append([Entry(term=1 + i // 3, index=i + 1, data=b"x" * (i + 1)) for i in range(n)])
    return s


def test_storage_entries_respect_bounds_and_byte_limit():
    s = filled(6)
    assert [e.index for e in s.entries(2, 5)] == [2, 3, 4]
    assert [e.index for e in s.entries(2, 5, max_bytes=5)] == [2, 3]
    assert [e.index for e in s.entries(6, 7, max_bytes=1)] == [6]  # never fewer than one
    with pytest.raises(UnavailableError):
        s.entries(5, 8)


def test_storage_compaction_keeps_the_term_of_the_compacted_boundary():
    s = filled(6)
    s.create_snapshot(4, VOTERS, b"snap")
    s.compact(4)
    assert s.first_index() == 5 and s.last_index() == 6
    assert s.term(4) == 2  # still answerable: the leader needs it for the next append's previous term
    with pytest.raises(CompactedError):
        s.term(3)
    with pytest.raises(CompactedError):
        s.entries(4, 6)
    with pytest.raises(CompactedError):
        s.compact(2)


def test_storage_append_truncates_a_conflicting_tail_and_ignores_compacted_entries():
    s = filled(6)
    s.create_snapshot(2, VOTERS, b"")
    s.compact(2)
    s.append([Entry(term=1, index=2), Entry(term=1, index=3, data=b"xxx"), Entry(term=9, index=4)])
    assert s.last_index() == 4 and s.term(4) == 9
    with pytest.raises(UnavailableError):
        s.append([Entry(term=9, index=7)])  # would leave a gap


def test_storage_refuses_old_snapshots():
    s = filled(6)
    s.create_snapshot(4, VOTERS, b"")
    with pytest.raises(SnapshotOutOfDateError):
        s.create_snapshot(3, VOTERS, b"")
    with pytest.raises(SnapshotOutOfDateError):
        s.apply_snapshot(snapshot_at(4, 2))
    with pytest.raises(UnavailableError):
        s.create_snapshot(7, VOTERS, b"")


def test_bootstrap_writes_committed_conf_changes_once():
    s = MemoryStorage()
    s.bootstrap([3, 1, 2])
    assert s.last_index() == 3 and s.hard_state() == HardState(term=1, commit=3)
    with pytest.raises(ValueError):
        s.bootstrap([1])
    with pytest.raises(ValueError):
        MemoryStorage().bootstrap([])


class SnapshotNotReadyStorage(MemoryStorage):
    """A storage whose snapshot is still being written (etcd's ErrSnapshotTemporarilyUnavailable)."""

    ready = False

    def snapshot(self):
        if not self.ready:
            raise SnapshotTemporarilyUnavailableError("snapshot in progress")
        return super().snapshot()


def test_leader_waits_while_the_snapshot_is_temporarily_unavailable():
    storage = SnapshotNotReadyStorage(VOTERS)
    storage.append([Entry(term=1, index=i, data=b"x") for i in range(1, 6)])
    storage.set_hard_state(HardState(term=1, commit=5))
    storage.ready = True
    storage.create_snapshot(5, VOTERS, b"s")
    storage.compact(5)
    storage.ready = False
    r = Raft(Config(id=1, applied=5), storage)
    r.become_candidate()
    r.become_leader()
    pr = r.tracker.progress[2]
    pr.recent_active = True
    pr.become_probe()
    pr.next = 1  # needs compacted entries
    r.msgs.clear()
    assert r._send_append(2) is False
    assert pr.state == ProgressState.PROBE and not any(m.type == MT.SNAPSHOT for m in r.msgs)
    storage.ready = True
    assert r._send_append(2) is True
    assert pr.state == ProgressState.SNAPSHOT and r.msgs[-1].type == MT.SNAPSHOT
