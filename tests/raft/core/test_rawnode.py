"""RawNode and Ready: what an application is told to persist, send and apply, and misuse that is refused."""

from __future__ import annotations

import msgspec
import pytest

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import StepError
from ddx_offchain.raft.core.progress import ProgressState
from ddx_offchain.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateRole,
    decode_conf_change,
    encode_conf_change,
)
from ddx_offchain.raft.rawnode import RawNode
from ddx_offchain.raft.storage import MemoryStorage

from .cluster import Cluster

MT = MessageType


def single_node() -> tuple[RawNode, MemoryStorage]:
    storage = MemoryStorage(ConfState(voters=(1,)))
    return RawNode(Config(id=1), storage), storage


def drain(node: RawNode, storage: MemoryStorage) -> list:
    readies = []
    while node.has_ready():
        rd = node.ready()
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        readies.append(rd)
        node.advance(rd)
    return readies


def test_single_node_campaign_produces_soft_and_hard_state_then_commits():
    node, storage = single_node()
    assert not node.has_ready()
    node.campaign()
    rd = node.ready()
    assert rd.soft_state == SoftState(leader=1, role=StateRole.LEADER)
    assert rd.hard_state == HardState(term=1, vote=1, commit=1)
    assert [e.index for e in rd.entries] == [1]
    assert [e.index for e in rd.committed_entries] == [1]  # persist first, then apply: safe in one Ready
    assert rd.must_sync
    storage.append(rd.entries)
    storage.set_hard_state(rd.hard_state)
    node.advance(rd)
    assert not node.has_ready()
    node.propose(b"a")
    [rd2] = drain(node, storage)
    assert rd2.soft_state is None
    assert rd2.hard_state == HardState(term=1, vote=1, commit=2)
    assert [e.data for e in rd2.committed_entries] == [b"a"]
    assert node.status().applied == 2


def test_hard_state_only_when_changed_and_no_sync_for_a_commit_only_change():
    storage = MemoryStorage(ConfState(voters=(1, 2)))
    storage.append([Entry(term=1, index=1), Entry(term=1, index=2, data=b"x")])
    storage.set_hard_state(HardState(term=1, vote=1, commit=1))
    node = RawNode(Config(id=2), storage)
    node.step(Message(type=MT.HEARTBEAT, from_=1, to=2, term=1, commit=1))
    rd = node.ready()
    assert rd.hard_state is None and not rd.must_sync  # nothing durable changed
    node.advance(rd)
    node.step(Message(type=MT.HEARTBEAT, from_=1, to=2, term=1, commit=2))
    rd = node.ready()
    assert rd.hard_state == HardState(term=1, vote=1, commit=2)
    assert not rd.must_sync  # a lost commit index is relearned from the leader: no fsync needed
    assert [e.data for e in rd.committed_entries] == [b"x"]
    node.advance(rd)


def test_ready_twice_without_advance_is_refused():
    node, storage = single_node()
    node.campaign()
    rd = node.ready()
    with pytest.raises(StepError):
        node.ready()
    with pytest.raises(StepError):
        node.advance(type(rd)(**{f: getattr(rd, f) for f in rd.__slots__}))
    node.advance(rd)


def test_committed_entries_are_handed_out_once():
    node, storage = single_node()
    node.campaign()
    node.propose(b"a")
    seen = [e.index for rd in drain(node, storage) for e in rd.committed_entries]
    node.propose(b"b")
    seen += [e.index for rd in drain(node, storage) for e in rd.committed_entries]
    assert seen == [1, 2, 3]


def test_local_message_types_cannot_be_stepped_from_the_network():
    node, _ = single_node()
    for t in (MT.HUP, MT.BEAT, MT.CHECK_QUORUM, MT.UNREACHABLE, MT.SNAP_STATUS):
        with pytest.raises(StepError):
            node.step(Message(type=t, from_=2, to=1, term=5))
    assert node.status().hard_state.term == 0


def test_responses_from_non_members_are_refused():
    node, _ = single_node()
    node.campaign()
    with pytest.raises(StepError):
        node.step(Message(type=MT.APPEND_RESP, from_=9, to=1, term=1, index=1))


def test_status_reports_progress_on_the_leader():
    c = Cluster()
    c.campaign(1)
    c.propose(1, b"x")
    status = c.nodes[1].node.status()
    assert status.soft_state == SoftState(leader=1, role=StateRole.LEADER)
    assert status.hard_state.commit == 2 and status.applied == 2 and status.last_index == 2
    assert status.conf_state == ConfState(voters=(1, 2, 3))
    assert {i: (p.match, p.state) for i, p in status.progress.items()} == {
        1: (2, ProgressState.REPLICATE),
        2: (2, ProgressState.REPLICATE),
        3: (2, ProgressState.REPLICATE),
    }
    assert c.nodes[2].node.status().progress == {}


def test_unreachable_report_sends_a_replicating_follower_back_to_probe():
    c = Cluster()
    c.campaign(1)
    c.nodes[1].node.report_unreachable(2)
    assert c.raft(1).tracker.progress[2].state == ProgressState.PROBE


def test_received_snapshot_is_in_ready_before_any_committed_entry():
    storage = MemoryStorage(ConfState(voters=(1, 2)))
    node = RawNode(Config(id=2), storage)
    snap = Snapshot(metadata=SnapshotMetadata(index=5, term=1, conf_state=ConfState(voters=(1, 2))), data=b"s")
    node.step(Message(type=MT.SNAPSHOT, from_=1, to=2, term=1, snapshot=snap))
    rd = node.ready()
    assert rd.snapshot == snap and rd.committed_entries == ()
    assert rd.hard_state == HardState(term=1, vote=0, commit=5)
    storage.apply_snapshot(rd.snapshot)
    storage.set_hard_state(rd.hard_state)
    node.advance(rd)
    assert node.status().applied == 5


def test_wire_types_round_trip_through_msgpack():
    m = Message(
        type=MT.APPEND, to=2, from_=1, term=3, log_term=2, index=7, commit=6,
        entries=(Entry(term=3, index=8, data=b"\x00\xff"),),
        snapshot=Snapshot(metadata=SnapshotMetadata(index=5, term=2, conf_state=ConfState((1, 2), (3,)))),
        reject=True, reject_hint=4, context=b"ctx",
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(m), type=Message) == m
    cc = ConfChange(ConfChangeType.ADD_LEARNER, 4, b"addr")
    assert decode_conf_change(encode_conf_change(cc)) == cc
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode([99, 1]), type=Message)  # unknown message type


@pytest.mark.parametrize(
    "message",
    [
        Message(type=MT.APPEND, from_=2, to=3, term=1),  # not for us
        Message(type=MT.APPEND, from_=0, to=1, term=1),  # no sender
        Message(type=MT.APPEND, from_=1, to=1, term=1),  # from ourselves
        Message(type=MT.APPEND, from_=2, to=1, term=1, index=0, entries=(Entry(term=1, index=2),)),  # gap
        Message(type=MT.APPEND, from_=2, to=1, term=1, index=0, entries=(Entry(term=2, index=1),)),  # future term
        Message(type=MT.APPEND, from_=2, to=1, term=2, index=0,
                entries=(Entry(term=2, index=1), Entry(term=1, index=2))),  # terms go down
        Message(type=MT.APPEND, from_=2, to=1, term=1, index=3, log_term=2),  # previous entry from the future
        Message(type=MT.SNAPSHOT, from_=2, to=1, term=1),  # no snapshot
        Message(type=MT.HEARTBEAT, from_=2, to=1, term=1, entries=(Entry(term=1, index=1),)),
        Message(type=MT.VOTE, from_=2, to=1, term=-1),
    ],
)
def test_contradictory_peer_messages_are_refused_and_change_nothing(message):
    storage = MemoryStorage(ConfState(voters=(1, 2)))
    node = RawNode(Config(id=1), storage)
    with pytest.raises(StepError):
        node.step(message)
    assert not node.has_ready()
    assert node.status().hard_state == HardState()


def test_a_received_snapshot_must_be_synced_before_it_is_acknowledged():
    storage = MemoryStorage(ConfState(voters=(1, 2)))
    storage.set_hard_state(HardState(term=1, vote=1, commit=0))
    node = RawNode(Config(id=2), storage)
    snap = Snapshot(metadata=SnapshotMetadata(index=5, term=1, conf_state=ConfState(voters=(1, 2))), data=b"s")
    node.step(Message(type=MT.SNAPSHOT, from_=1, to=2, term=1, snapshot=snap))
    rd = node.ready()
    assert rd.entries == () and rd.hard_state.term == 1 and rd.hard_state.vote == 1  # term and vote unchanged
    assert rd.must_sync  # yet the acknowledgement below promises the snapshot is durable
    assert [(m.type, m.index) for m in rd.messages] == [(MT.APPEND_RESP, 5)]


def _leader_with_one_entry_acknowledged_by_follower_2() -> tuple[Cluster, int]:
    """A 3-node cluster whose leader (1) proposed b"a", persisted and sent it; both followers persisted it and
    answered; only follower 2's answer has been stepped (so the commit index just moved). Returns the index of a."""
    c = Cluster()
    c.campaign(1)
    leader = c.nodes[1].node
    leader.propose(b"a")
    appends = c.handle_ready(1)
    index = appends[0].entries[-1].index
    answers = {}
    for m in appends:
        c.nodes[m.to].node.step(m)
        answers[m.to] = [a for a in c.handle_ready(m.to) if a.type == MT.APPEND_RESP]
    leader.step(answers[2][-1])
    assert c.raft(1).raft_log.committed == index
    return c, index


def test_the_new_commit_index_rides_on_the_next_append_instead_of_an_extra_message():
    c, index = _leader_with_one_entry_acknowledged_by_follower_2()
    leader = c.nodes[1].node
    leader.propose(b"b")  # proposed in the same loop turn as the acknowledgement was stepped
    rd = leader.ready()
    appends = [m for m in rd.messages if m.type == MT.APPEND]
    assert sorted(m.to for m in appends) == [2, 3]  # one each, not an entry-less one first
    assert all(m.commit == index and [e.data for e in m.entries] == [b"b"] for m in appends)
    c.nodes[1].storage.append(rd.entries)
    leader.advance(rd)
    for m in appends:  # the followers learn the commit from it and apply a
        c.nodes[m.to].node.step(m)
        c.handle_ready(m.to)
        assert [e.data for e in c.nodes[m.to].applied if e.data] == [b"a"]


def test_without_a_following_append_the_commit_index_still_goes_out_at_once():
    c, index = _leader_with_one_entry_acknowledged_by_follower_2()
    rd = c.nodes[1].node.ready()
    commits = [(m.to, m.commit, m.entries) for m in rd.messages if m.type == MT.APPEND]
    assert sorted(commits) == [(2, index, ()), (3, index, ())]


def test_durable_committed_entries_are_applied_while_a_ready_is_outstanding_and_in_order():
    c, index = _leader_with_one_entry_acknowledged_by_follower_2()
    leader, storage = c.nodes[1].node, c.nodes[1].storage
    # A Ready is taken and its write is in flight (b is proposed; the committed a is handed out with it).
    leader.propose(b"b")
    in_flight = leader.ready()
    assert [e.data for e in in_flight.committed_entries] == [b"a"]
    assert leader.take_durable_committed() == ()  # a is handed out already and not applied: nothing may pass it
    storage.append(in_flight.entries)
    leader.advance(in_flight)
    # Next: c is proposed and its Ready taken; meanwhile follower 3 acknowledges b, committing it.
    leader.propose(b"c")
    second = leader.ready()
    assert second.committed_entries == ()
    b_index = index + 1
    for m in [m for m in in_flight.messages if m.type == MT.APPEND and m.to == 3]:
        c.nodes[3].node.step(m)
    for answer in [a for a in c.handle_ready(3) if a.type == MT.APPEND_RESP]:
        leader.step(answer)
    assert c.raft(1).raft_log.committed >= b_index
    early = leader.take_durable_committed()  # b is on stable storage: applied without waiting for `second`
    assert [e.data for e in early] == [b"b"]
    assert leader.take_durable_committed() == ()  # handed out once
    with pytest.raises(StepError):
        leader.applied(early[:0] + (Entry(term=early[0].term, index=early[0].index - 1),))
    leader.applied(early)
    assert c.raft(1).raft_log.applied == b_index
    storage.append(second.entries)
    leader.advance(second)
    assert leader.ready().committed_entries == ()  # b is not handed out a second time


def test_committed_entries_not_yet_on_stable_storage_wait_for_their_ready():
    c = Cluster()
    c.campaign(1)
    follower = c.nodes[2].node
    leader = c.nodes[1].node
    leader.propose(b"x")
    [append] = [m for m in c.handle_ready(1) if m.type == MT.APPEND and m.to == 2]
    # The leader commits x (follower 3 acknowledged) and tells follower 2 together with the entry itself.
    append = msgspec.structs.replace(append, commit=append.entries[-1].index)
    follower.step(append)
    assert c.raft(2).raft_log.committed == append.entries[-1].index
    assert follower.take_durable_committed() == ()  # x is committed but not yet persisted here
    rd = follower.ready()
    assert [e.data for e in rd.committed_entries] == [b"x"] and rd.entries
