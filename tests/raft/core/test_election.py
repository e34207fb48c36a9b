"""Elections: vote rules, dueling candidates, stale terms, PreVote, CheckQuorum (ported from etcd-io/raft tests)."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.config import Config, ConfigError
from ddx_offchain.raft.core.raft import Raft
from ddx_offchain.raft.messages import (
    CAMPAIGN_TRANSFER,
    Entry,
    HardState,
    Message,
    MessageType,
    StateRole,
)

from .cluster import Cluster, make_storage

MT = MessageType


def test_single_round_elects_one_leader_and_commits_an_entry_of_its_term():
    c = Cluster()
    c.campaign(1)
    assert c.leader() == 1
    for node_id in (1, 2, 3):
        raft = c.raft(node_id)
        assert raft.term == 1
        assert raft.lead == 1
        assert raft.raft_log.committed == 1  # the leader's empty entry
        assert c.log_terms(node_id) == [1]


def test_randomized_timeout_elects_a_leader_without_help():
    c = Cluster(ids=(1, 2, 3, 4, 5))
    c.tick_all(40)
    assert len(c.leaders()) == 1


def test_randomized_election_timeout_is_in_range_and_seeded():
    seen = set()
    for seed in range(50):
        r = Raft(Config(id=1, election_tick=10, seed=seed), make_storage((1, 2, 3)))
        assert 10 <= r.randomized_election_timeout < 20
        seen.add(r.randomized_election_timeout)
        again = Raft(Config(id=1, election_tick=10, seed=seed), make_storage((1, 2, 3)))
        assert again.randomized_election_timeout == r.randomized_election_timeout
    assert len(seen) > 3


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(id=0),
        dict(id=1, heartbeat_tick=0),
        dict(id=1, election_tick=1, heartbeat_tick=1),
        dict(id=1, max_inflight_msgs=0),
        dict(id=1, max_size_per_msg=0),
        dict(id=1, applied=-1),
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        Raft(Config(**kwargs), make_storage((1,)))


@pytest.mark.parametrize(
    "log_terms, cand_index, cand_term, granted",
    [
        # Same last term: the longer (or equal) log wins.
        ([1, 1], 2, 1, True),
        ([1, 1], 1, 1, False),
        ([1, 1], 3, 1, True),
        # A higher last term wins whatever the length.
        ([1, 1], 1, 2, True),
        ([1, 2], 5, 1, False),
        ([2], 1, 2, True),
    ],
)
def test_vote_goes_only_to_an_up_to_date_log(log_terms, cand_index, cand_term, granted):
    storage = make_storage((1, 2), terms=log_terms, hard_state=HardState(term=2, commit=0))
    r = Raft(Config(id=1, pre_vote=False, check_quorum=False), storage)
    r.step(Message(type=MT.VOTE, to=1, from_=2, term=3, index=cand_index, log_term=cand_term))
    [resp] = r.msgs
    assert resp.type == MT.VOTE_RESP
    assert resp.reject is (not granted)
    assert r.vote == (2 if granted else 0)


def test_one_vote_per_term():
    r = Raft(Config(id=1, pre_vote=False, check_quorum=False), make_storage((1, 2, 3)))
    r.step(Message(type=MT.VOTE, to=1, from_=2, term=1))
    r.step(Message(type=MT.VOTE, to=1, from_=3, term=1))
    r.step(Message(type=MT.VOTE, to=1, from_=2, term=1))  # a retransmission from the one we voted for
    assert [m.reject for m in r.msgs] == [False, True, False]
    assert r.vote == 2


def test_vote_is_persisted_before_its_response_leaves():
    c = Cluster(pre_vote=False)
    node = c.nodes[2].node
    node.step(Message(type=MT.VOTE, to=2, from_=1, term=1))
    rd = node.ready()
    assert rd.hard_state == HardState(term=1, vote=1, commit=0)
    assert rd.must_sync
    assert [m.type for m in rd.messages] == [MT.VOTE_RESP]


def test_stale_term_messages_are_ignored_and_an_old_leader_learns_the_new_term():
    c = Cluster()
    c.campaign(1)
    c.isolate(1)
    c.tick(2, 40)  # 2 and 3 elect a new leader at a higher term
    c.tick(3, 40)
    new_leader = [i for i in (2, 3) if c.raft(i).role == StateRole.LEADER]
    assert new_leader
    assert c.raft(1).role == StateRole.LEADER or c.raft(1).role == StateRole.FOLLOWER
    old_term = c.raft(1).term
    # The old leader's append at its old term is refused with the new term; it steps down on the answer.
    follower = new_leader[0]
    stale = Message(type=MT.APPEND, to=follower, from_=1, term=old_term, index=1, log_term=1,
                    entries=(Entry(term=old_term, index=2, data=b"stale"),), commit=2)
    before = c.log_terms(follower)
    c.heal()
    c.nodes[follower].node.step(stale)
    assert c.log_terms(follower) == before
    c.settle()
    assert c.raft(1).role == StateRole.FOLLOWER
    assert c.raft(1).term == c.raft(follower).term
    c.tick(follower)  # the next heartbeat tells it who leads
    assert c.raft(1).lead == follower


def test_dueling_candidates_without_prevote():
    c = Cluster(pre_vote=False, check_quorum=False)
    c.cut(1, 3)
    c.campaign(1)  # 1 wins term 1 with 2's vote
    c.campaign(3)  # 3 also campaigns at term 1 but 2 already voted: 3 stays candidate
    assert c.raft(1).role == StateRole.LEADER
    assert c.raft(3).role == StateRole.CANDIDATE and c.raft(3).term == 1
    c.heal()
    # 3 campaigns again at term 2 and deposes 1, but nobody votes for it: its log lacks 1's entry.
    c.campaign(3)
    assert [c.raft(i).role for i in (1, 2, 3)] == [StateRole.FOLLOWER] * 3
    assert [c.raft(i).term for i in (1, 2, 3)] == [2, 2, 2]
    assert c.log_terms(3) == []
    c.campaign(1)
    assert c.leader() == 1
    assert all(c.log_terms(i) == [1, 3] for i in (1, 2, 3))


def test_split_vote_in_one_term_elects_nobody_then_the_next_round_does():
    c = Cluster(ids=(1, 2, 3, 4), pre_vote=False, check_quorum=False)
    c.cut(1, 3)
    c.cut(1, 4)
    c.cut(2, 3)
    c.cut(2, 4)
    c.nodes[1].node.campaign()
    c.nodes[3].node.campaign()
    c.settle()
    # 1 gets 2's vote, 3 gets 4's: two of four is not a majority for anyone.
    assert c.leaders() == []
    assert c.raft(1).role == c.raft(3).role == StateRole.CANDIDATE
    c.heal()
    c.campaign(1)
    assert c.leader() == 1


def test_disruptive_follower_without_prevote_deposes_the_leader():
    # With CheckQuorum, a node at a higher term answers a stale heartbeat with its term (etcd's
    # TestDisruptiveFollower): without PreVote that is enough for the rejoining node to depose a healthy leader.
    c = Cluster(pre_vote=False, check_quorum=True)
    c.campaign(1)
    c.isolate(3)
    c.tick(3, 40)  # 3 times out repeatedly, bumping its term each time
    assert c.raft(3).term > c.raft(1).term
    c.heal()
    c.tick(1)  # 3 answers the heartbeat with its higher term
    assert c.raft(1).role == StateRole.FOLLOWER
    assert c.raft(1).term == c.raft(3).term


@pytest.mark.parametrize("check_quorum", [True, False])
def test_disruptive_follower_with_prevote_changes_nothing(check_quorum):
    c = Cluster(pre_vote=True, check_quorum=check_quorum)
    c.campaign(1)
    term = c.raft(1).term
    c.isolate(3)
    c.tick(3, 40)
    assert c.raft(3).term == term  # pre-votes never bump the term
    assert c.raft(3).role == StateRole.PRE_CANDIDATE
    c.heal()
    c.tick(1)
    assert c.raft(1).role == StateRole.LEADER
    assert c.raft(1).term == term
    assert c.raft(3).role == StateRole.FOLLOWER and c.raft(3).lead == 1


def test_check_quorum_lease_ignores_votes_while_a_leader_is_alive():
    c = Cluster(pre_vote=False, check_quorum=True)
    c.campaign(1)
    c.isolate(3)
    c.tick(3, 40)
    c.heal()
    higher = c.raft(3).term
    # 3's vote request reaches 2, which heard from 1 recently: ignored, term unchanged.
    c.nodes[2].node.step(Message(type=MT.VOTE, to=2, from_=3, term=higher, index=1, log_term=1))
    assert c.raft(2).term == 1
    assert c.nodes[2].node.ready().messages == ()


def test_check_quorum_lease_is_bypassed_by_a_transfer_campaign():
    c = Cluster(pre_vote=False, check_quorum=True)
    c.campaign(1)
    c.nodes[2].node.step(Message(type=MT.VOTE, to=2, from_=3, term=2, index=1, log_term=1, context=CAMPAIGN_TRANSFER))
    assert c.raft(2).term == 2 and c.raft(2).vote == 3


def test_check_quorum_makes_an_isolated_leader_step_down():
    c = Cluster(check_quorum=True)
    c.campaign(1)
    c.isolate(1)
    c.tick(1, c.raft(1).election_timeout)
    assert c.raft(1).role == StateRole.LEADER  # first round: everyone was active since election
    c.tick(1, c.raft(1).election_timeout)
    assert c.raft(1).role == StateRole.FOLLOWER


def test_without_check_quorum_an_isolated_leader_stays():
    c = Cluster(check_quorum=False)
    c.campaign(1)
    c.isolate(1)
    c.tick(1, 5 * c.raft(1).election_timeout)
    assert c.raft(1).role == StateRole.LEADER


def test_prevote_rejected_by_higher_term_makes_candidate_catch_up():
    c = Cluster(pre_vote=True, check_quorum=False)
    c.campaign(1)
    r3 = c.raft(3)
    r3.step(Message(type=MT.PRE_VOTE_RESP, to=3, from_=2, term=5, reject=True))
    assert r3.term == 5 and r3.role == StateRole.FOLLOWER


def test_learner_never_campaigns():
    c = Cluster(ids=(1, 2), learners=(3,))
    c.tick(3, 100)
    assert c.raft(3).role == StateRole.FOLLOWER and c.raft(3).term == 0
    c.nodes[3].node.campaign()
    c.settle()
    assert c.raft(3).term == 0


def test_prevote_request_never_changes_the_term_of_the_node_asked():
    c = Cluster(pre_vote=True, check_quorum=False)
    c.campaign(1)
    c.nodes[2].node.step(Message(type=MT.PRE_VOTE, to=2, from_=3, term=5, index=1, log_term=1))
    assert c.raft(2).term == 1 and c.raft(2).vote == 1 and c.raft(2).lead == 1
    rd = c.nodes[2].node.ready()
    [resp] = rd.messages
    assert resp.type == MT.PRE_VOTE_RESP and resp.term == 5 and not resp.reject
    assert rd.hard_state is None  # nothing durable changed


@pytest.mark.parametrize(
    "size, granted, rejected, expected",
    [
        # Paper 5.2 (etcd TestLeaderElectionInOneRoundRPC): a candidate wins with a majority of votes, loses once
        # a majority has refused, and otherwise keeps waiting.
        (1, set(), set(), StateRole.LEADER),
        (3, {2, 3}, set(), StateRole.LEADER),
        (3, {2}, set(), StateRole.LEADER),
        (5, {2, 3, 4, 5}, set(), StateRole.LEADER),
        (5, {2, 3}, set(), StateRole.LEADER),
        (3, set(), {2, 3}, StateRole.FOLLOWER),
        (5, set(), {2, 3, 4}, StateRole.FOLLOWER),
        (5, {2}, {3, 4}, StateRole.CANDIDATE),
        (3, set(), set(), StateRole.CANDIDATE),
        (5, {2}, set(), StateRole.CANDIDATE),
    ],
)
def test_election_in_one_round(size, granted, rejected, expected):
    voters = tuple(range(1, size + 1))
    r = Raft(Config(id=1, pre_vote=False), make_storage(voters))
    r.step(Message(type=MT.HUP, from_=1))
    for node_id in sorted(granted | rejected):
        r.step(Message(type=MT.VOTE_RESP, from_=node_id, to=1, term=r.term, reject=node_id in rejected))
    assert r.role == expected
    assert r.term == 1


def test_candidate_steps_down_on_append_from_a_leader_of_its_term():
    r = Raft(Config(id=1, pre_vote=False), make_storage((1, 2, 3)))
    r.step(Message(type=MT.HUP, from_=1))
    assert r.role == StateRole.CANDIDATE
    r.step(Message(type=MT.APPEND, from_=2, to=1, term=1))
    assert r.role == StateRole.FOLLOWER and r.lead == 2 and r.term == 1


def test_vote_requests_carry_the_candidates_last_entry():
    storage = make_storage((1, 2, 3), terms=[1, 1, 2], hard_state=HardState(term=2))
    r = Raft(Config(id=1, pre_vote=False), storage)
    r.step(Message(type=MT.HUP, from_=1))
    votes = sorted((m.to, m.term, m.index, m.log_term) for m in r.msgs if m.type == MT.VOTE)
    assert votes == [(2, 3, 3, 2), (3, 3, 3, 2)]


def test_prevote_requests_carry_the_next_term_but_change_nothing_locally():
    storage = make_storage((1, 2, 3), terms=[1], hard_state=HardState(term=1, vote=2))
    r = Raft(Config(id=1, pre_vote=True), storage)
    r.step(Message(type=MT.HUP, from_=1))
    assert r.role == StateRole.PRE_CANDIDATE and r.term == 1 and r.vote == 2
    assert sorted((m.to, m.term) for m in r.msgs if m.type == MT.PRE_VOTE) == [(2, 2), (3, 2)]
    r.step(Message(type=MT.PRE_VOTE_RESP, from_=2, to=1, term=2))
    assert r.role == StateRole.CANDIDATE and r.term == 2 and r.vote == 1
