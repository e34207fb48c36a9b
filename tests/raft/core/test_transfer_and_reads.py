"""Leadership transfer (TimeoutNow, thesis 3.10) and ReadIndex linearizable reads (thesis 6.4)."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.errors import ProposalDroppedError
from ddx_offchain.raft.messages import Message, MessageType, ReadState, StateRole

from .cluster import Cluster

MT = MessageType


# --- leadership transfer ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pre_vote", [True, False])
def test_transfer_to_an_up_to_date_follower(pre_vote):
    c = Cluster(pre_vote=pre_vote)
    c.campaign(1)
    c.nodes[1].node.transfer_leadership(2)
    c.settle()
    assert c.leader() == 2
    assert c.raft(2).term == 2
    assert c.raft(1).role == StateRole.FOLLOWER and c.raft(1).lead == 2


def test_transfer_to_a_lagging_follower_catches_it_up_first():
    c = Cluster()
    c.campaign(1)
    c.isolate(3)
    for k in range(3):
        c.propose(1, b"p%d" % k)
    c.heal()
    c.nodes[1].node.transfer_leadership(3)
    c.settle()
    assert c.leader() == 3
    assert c.log_terms(3)[:5] == [1, 1, 1, 1, 2][:5]
    timeout_now = [m for m in c.delivered if m.type == MT.TIMEOUT_NOW]
    appends_before = [m for m in c.delivered[: c.delivered.index(timeout_now[0])] if m.type == MT.APPEND and m.to == 3]
    assert appends_before  # the leader sent the missing entries before telling 3 to campaign


def test_proposals_are_refused_during_a_transfer_and_the_transfer_times_out():
    c = Cluster()
    c.campaign(1)
    c.isolate(3)
    c.nodes[1].node.transfer_leadership(3)
    c.settle()
    assert c.raft(1).lead_transferee == 3
    with pytest.raises(ProposalDroppedError, match="transfer"):
        c.nodes[1].node.propose(b"x")
    c.cut_links -= {(1, 2), (2, 1)}
    c.tick(1, c.raft(1).election_timeout)
    assert c.raft(1).lead_transferee == 0
    assert c.raft(1).role == StateRole.LEADER
    c.propose(1, b"x")


def test_transfer_requests_to_self_or_a_learner_are_ignored():
    c = Cluster(ids=(1, 2), learners=(3,))
    c.campaign(1)
    c.nodes[1].node.transfer_leadership(1)
    c.nodes[1].node.transfer_leadership(3)
    c.settle()
    assert c.leader() == 1 and c.raft(1).lead_transferee == 0
    assert not any(m.type == MT.TIMEOUT_NOW for m in c.delivered)


def test_a_follower_forwards_the_transfer_request_to_the_leader():
    c = Cluster()
    c.campaign(1)
    c.nodes[3].node.transfer_leadership(3)
    c.settle()
    assert c.leader() == 3


def test_timeout_now_from_a_stale_term_is_ignored():
    c = Cluster()
    c.campaign(1)
    c.nodes[1].node.transfer_leadership(2)
    c.settle()
    c.nodes[3].node.step(Message(type=MT.TIMEOUT_NOW, from_=1, to=3, term=1))
    c.settle()
    assert c.leader() == 2


# --- ReadIndex --------------------------------------------------------------------------------------------------
def test_leader_read_index_after_a_quorum_confirms_leadership():
    c = Cluster()
    c.campaign(1)
    c.propose(1, b"x")
    c.cut(1, 2)
    c.cut(1, 3)
    c.nodes[1].node.read_index(b"r1")
    c.settle()
    assert c.nodes[1].read_states == []  # no heartbeat answers: not confirmed
    c.heal()
    c.nodes[1].node.read_index(b"r2")
    c.settle()
    # The second round's quorum confirms the earlier request as well, in order.
    assert c.nodes[1].read_states == [ReadState(index=2, request_ctx=b"r1"), ReadState(index=2, request_ctx=b"r2")]


def test_follower_read_index_is_answered_by_the_leader():
    c = Cluster()
    c.campaign(1)
    c.propose(1, b"x")
    c.nodes[3].node.read_index(b"f")
    c.settle()
    assert c.nodes[3].read_states == [ReadState(index=2, request_ctx=b"f")]


def test_read_index_waits_for_an_entry_of_the_leaders_term():
    c = Cluster()
    c.campaign(1)
    c.isolate(1)
    r1 = c.raft(1)
    r1.become_follower(r1.term, 0)
    r1.become_candidate()
    r1.become_leader()  # its empty entry of the new term is not committed
    c.nodes[1].node.read_index(b"early")
    c.settle()
    assert c.nodes[1].read_states == []
    assert r1.pending_read_index_messages
    c.heal()
    c.tick(1)
    assert c.nodes[1].read_states == [ReadState(index=r1.raft_log.committed, request_ctx=b"early")]
    assert c.raft(1).raft_log.term(r1.raft_log.committed) == r1.term


def test_single_voter_reads_at_once():
    c = Cluster(ids=(1,))
    c.campaign(1)
    c.nodes[1].node.read_index(b"solo")
    c.settle()
    assert c.nodes[1].read_states == [ReadState(index=1, request_ctx=b"solo")]


def test_read_index_without_a_leader_is_dropped():
    c = Cluster()
    c.nodes[2].node.read_index(b"nobody")
    c.settle()
    assert c.nodes[2].read_states == [] and c.delivered == []


def test_read_index_needs_a_quorum_not_just_one_answer():
    c = Cluster(ids=(1, 2, 3, 4, 5))
    c.campaign(1)
    for other in (3, 4, 5):
        c.cut(1, other)
    c.nodes[1].node.read_index(b"minority")
    c.settle()
    assert any(m.type == MT.HEARTBEAT_RESP and m.context == b"minority" for m in c.delivered)
    assert c.nodes[1].read_states == []  # 1 and 2 are two of five
    c.cut_links -= {(1, 3), (3, 1)}
    c.nodes[1].node.read_index(b"majority")
    c.settle()
    assert [rs.request_ctx for rs in c.nodes[1].read_states] == [b"minority", b"majority"]


def test_a_forwarded_transfer_names_the_transferee_and_keeps_the_real_sender():
    # The transport checks from_ against the authenticated peer, so the transferee travels in index.
    c = Cluster()
    c.campaign(1)
    c.nodes[3].node.transfer_leadership(2)
    c.settle()
    [forwarded] = [m for m in c.delivered if m.type == MT.TRANSFER_LEADER]
    assert (forwarded.from_, forwarded.to, forwarded.index) == (3, 1, 2)
    assert c.leader() == 2
