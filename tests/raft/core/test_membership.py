"""Single-step membership changes with learners (thesis chapter 4, etcd's ConfChange v1)."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import ProposalDroppedError
from ddx_offchain.raft.core.raft import Raft
from ddx_offchain.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    StateRole,
    encode_conf_change,
)
from ddx_offchain.raft.storage import MemoryStorage

from .cluster import Cluster

MT = MessageType
ADD_VOTER, ADD_LEARNER, REMOVE = ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE_NODE


def bootstrapped_cluster(founders=(1, 2, 3), **kwargs) -> Cluster:
    storages = {}
    for node_id in founders:
        storages[node_id] = MemoryStorage()
        storages[node_id].bootstrap(founders)
    c = Cluster(founders, storages=storages, **kwargs)
    c.settle()  # apply the bootstrap conf changes
    return c


def add_empty_node(c: Cluster, node_id: int) -> None:
    c.add_node(node_id, MemoryStorage())


def test_bootstrap_membership_comes_from_the_log():
    c = bootstrapped_cluster()
    for node_id in (1, 2, 3):
        assert c.nodes[node_id].conf_state == ConfState(voters=(1, 2, 3))
    c.campaign(1)
    assert c.leader() == 1


def test_new_learner_catches_up_without_voting_or_counting_for_commit():
    c = bootstrapped_cluster()
    c.campaign(1)
    add_empty_node(c, 4)
    c.propose_conf_change(1, ConfChange(ADD_LEARNER, 4))
    assert c.nodes[1].conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    c.propose(1, b"x")
    assert c.nodes[4].applied[-1].data == b"x"
    assert c.nodes[4].conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    # Commit needs 2 of the 3 voters; the learner's acknowledgement does not count.
    c.isolate(2)
    c.isolate(3)
    c.cut_links -= {(1, 4), (4, 1)}
    c.propose(1, b"y")
    assert c.raft(4).raft_log.last_index() == c.raft(1).raft_log.last_index()
    assert c.raft(1).raft_log.committed < c.raft(1).raft_log.last_index()
    # A leader never asks a learner for its vote.
    c.heal()
    c.tick(1, 1)
    c.isolate(1)
    c.tick(2, 60)
    assert not any(m.type in (MT.VOTE, MT.PRE_VOTE) and m.to == 4 for m in c.delivered)
    assert c.raft(4).role == StateRole.FOLLOWER


def test_learner_promotion_waits_until_it_has_caught_up():
    c = bootstrapped_cluster()
    c.campaign(1)
    add_empty_node(c, 4)
    c.isolate(4)
    c.propose_conf_change(1, ConfChange(ADD_LEARNER, 4))
    with pytest.raises(ProposalDroppedError, match="has not caught up"):
        c.nodes[1].node.propose_conf_change(ConfChange(ADD_VOTER, 4))
    c.heal()
    c.tick(1)
    c.propose_conf_change(1, ConfChange(ADD_VOTER, 4))
    assert c.nodes[1].conf_state == ConfState(voters=(1, 2, 3, 4))
    assert c.nodes[4].conf_state == ConfState(voters=(1, 2, 3, 4))


def test_only_one_membership_change_at_a_time():
    c = bootstrapped_cluster()
    c.campaign(1)
    c.isolate(2)
    c.isolate(3)
    c.nodes[1].node.propose_conf_change(ConfChange(ADD_LEARNER, 4))
    with pytest.raises(ProposalDroppedError, match="one change at a time"):
        c.nodes[1].node.propose_conf_change(ConfChange(ADD_LEARNER, 5))
    c.heal()
    c.tick(1)
    assert c.nodes[1].conf_state.learners == (4,)
    c.nodes[1].node.propose_conf_change(ConfChange(ADD_LEARNER, 5))  # applied: the next one may go


def test_forwarded_second_change_is_neutralised_not_appended():
    c = bootstrapped_cluster()
    c.campaign(1)
    c.isolate(2)
    c.isolate(3)
    r = c.raft(1)
    r.propose_conf_change(ConfChange(ADD_LEARNER, 4))
    before = r.raft_log.last_index()
    data = encode_conf_change(ConfChange(ADD_LEARNER, 5))
    r.step(Message(type=MT.PROPOSE, from_=2, entries=(Entry(term=0, index=0, type=EntryType.CONF_CHANGE,
                                                            data=data),)))
    appended = r.raft_log.slice(before + 1, r.raft_log.last_index() + 1)
    assert [(e.type, e.data) for e in appended] == [(EntryType.NORMAL, b"")]


def test_new_leader_refuses_membership_changes_until_its_inherited_tail_is_applied():
    # The inherited tail may hide an uncommitted conf change from the previous term: until everything up to
    # the leader's first index of its term is applied, a new change could make two changes in flight.
    storage = MemoryStorage()
    storage.bootstrap([1, 2, 3])
    storage.append([Entry(term=1, index=4, data=b"inherited, not committed")])
    r = Raft(Config(id=1, pre_vote=False), storage)
    for node_id in (1, 2, 3):
        r.apply_conf_change(ConfChange(ADD_VOTER, node_id))
    r.raft_log.applied_to(3)
    r.become_candidate()
    r.become_leader()
    with pytest.raises(ProposalDroppedError, match="one change at a time"):
        r.propose_conf_change(ConfChange(ADD_LEARNER, 4))
    for follower in (2, 3):
        r.step(Message(type=MT.APPEND_RESP, from_=follower, to=1, term=r.term, index=r.raft_log.last_index()))
    r.raft_log.applied_to(r.raft_log.committed)
    r.propose_conf_change(ConfChange(ADD_LEARNER, 4))
    assert r.raft_log.slice(r.raft_log.last_index(), r.raft_log.last_index() + 1)[0].type == EntryType.CONF_CHANGE


def test_last_voter_cannot_be_removed_or_demoted():
    storage = MemoryStorage()
    storage.bootstrap([1])
    c = Cluster((1,), storages={1: storage})
    c.settle()
    c.campaign(1)
    with pytest.raises(ProposalDroppedError, match="last voter"):
        c.nodes[1].node.propose_conf_change(ConfChange(REMOVE, 1))
    with pytest.raises(ProposalDroppedError, match="last voter"):
        c.nodes[1].node.propose_conf_change(ConfChange(ADD_LEARNER, 1))


def test_removing_a_follower_shrinks_the_quorum():
    c = bootstrapped_cluster((1, 2, 3, 4))
    c.campaign(1)
    c.propose_conf_change(1, ConfChange(REMOVE, 4))
    assert c.nodes[1].conf_state == ConfState(voters=(1, 2, 3))
    c.isolate(3)
    c.isolate(4)
    c.propose(1, b"two of three")
    assert c.nodes[1].applied[-1].data == b"two of three"


def test_removed_leader_steps_down_and_hands_over():
    c = bootstrapped_cluster()
    c.campaign(1)
    c.propose_conf_change(1, ConfChange(REMOVE, 1))
    assert c.raft(1).role == StateRole.FOLLOWER
    assert not c.raft(1).promotable()
    # The most caught-up voter got TimeoutNow and took over at once.
    assert any(m.type == MT.TIMEOUT_NOW and m.from_ == 1 for m in c.delivered)
    leader = c.leader()
    assert leader in (2, 3)
    c.propose(leader, b"after removal")
    assert c.nodes[2].applied[-1].data == b"after removal"
    c.tick(1, 100)
    assert c.raft(1).role == StateRole.FOLLOWER  # a removed node never campaigns


def test_unapplied_membership_change_blocks_campaigning():
    storage = MemoryStorage()
    storage.bootstrap([1, 2, 3])
    r = Raft(Config(id=1, pre_vote=False), storage)  # committed conf changes not yet applied: no membership
    r.step(Message(type=MT.HUP, from_=1))
    assert r.role == StateRole.FOLLOWER and r.term == 1
    for node_id in (1, 2, 3):
        r.apply_conf_change(ConfChange(ADD_VOTER, node_id))
    r.raft_log.applied_to(3)
    r.step(Message(type=MT.HUP, from_=1))
    assert r.role == StateRole.CANDIDATE


def test_demoting_a_voter_to_learner_and_back():
    c = bootstrapped_cluster((1, 2, 3, 4))
    c.campaign(1)
    c.propose_conf_change(1, ConfChange(ADD_LEARNER, 4))
    assert c.nodes[1].conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    assert c.raft(1).tracker.progress[4].is_learner
    c.propose_conf_change(1, ConfChange(ADD_VOTER, 4))
    assert c.nodes[1].conf_state == ConfState(voters=(1, 2, 3, 4))


def test_committed_but_unapplied_conf_change_blocks_campaigning_of_a_member():
    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    change = encode_conf_change(ConfChange(REMOVE, 3))
    storage.append([Entry(term=1, index=1, type=EntryType.CONF_CHANGE, data=change)])
    storage.set_hard_state(HardState(term=1, commit=1))
    r = Raft(Config(id=1, pre_vote=False), storage)
    assert r.promotable()
    r.step(Message(type=MT.HUP, from_=1))
    assert r.role == StateRole.FOLLOWER  # membership may be about to change: wait until it is applied
    r.apply_conf_change(ConfChange(REMOVE, 3))
    r.raft_log.applied_to(1)
    r.step(Message(type=MT.HUP, from_=1))
    assert r.role == StateRole.CANDIDATE


def test_a_new_node_cannot_become_a_voter_without_being_a_learner_first():
    c = bootstrapped_cluster()
    c.campaign(1)
    with pytest.raises(ProposalDroppedError, match="add it as a learner first"):
        c.nodes[1].node.propose_conf_change(ConfChange(ADD_VOTER, 4))
    assert c.nodes[1].conf_state == ConfState(voters=(1, 2, 3))


def test_a_learner_answers_a_vote_request():
    # etcd's campaign_learner_must_vote: the candidate may already know the learner as a voter (a newer
    # configuration the learner has not applied yet); refusing could leave a quorum of the new config unable to
    # elect anyone.
    storage = MemoryStorage(ConfState(voters=(1, 2), learners=(3,)))
    r = Raft(Config(id=3, pre_vote=False), storage)
    r.step(Message(type=MT.VOTE, from_=2, to=3, term=1, index=0, log_term=0))
    [resp] = r.msgs
    assert resp.type == MT.VOTE_RESP and not resp.reject and r.vote == 2


def test_a_malformed_forwarded_conf_change_becomes_an_empty_entry():
    c = bootstrapped_cluster()
    c.campaign(1)
    r = c.raft(1)
    before = r.raft_log.last_index()
    r.step(Message(type=MT.PROPOSE, from_=2, entries=(Entry(term=0, index=0, type=EntryType.CONF_CHANGE,
                                                            data=b"\xc1 not msgpack"),)))
    [appended] = r.raft_log.slice(before + 1, r.raft_log.last_index() + 1)
    assert (appended.type, appended.data) == (EntryType.NORMAL, b"")
