"""Log replication: paper figures 7 and 8, fast back-off, flow control, commit propagation, proposals."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import LogInvariantError, ProposalDroppedError
from ddx_offchain.raft.core.progress import ProgressState
from ddx_offchain.raft.core.raft import Raft
from ddx_offchain.raft.messages import Entry, HardState, Message, MessageType, StateRole
from ddx_offchain.raft.rawnode import RawNode

from .cluster import Cluster, make_storage

MT = MessageType


def leader_with_log(terms: list[int], voters=(1, 2, 3), **kwargs) -> Raft:
    """A Raft node 1 that holds ``terms`` and has just won an election at max(terms)+1 (or later)."""
    term = max(terms, default=0)
    storage = make_storage(voters, terms=terms, hard_state=HardState(term=term, commit=0))
    r = Raft(Config(id=1, pre_vote=False, **kwargs), storage)
    r.become_candidate()
    r.become_leader()
    r.msgs.clear()
    return r


# --- paper figure 7 ---------------------------------------------------------------------------------------------
LEADER_FIG7 = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FOLLOWERS_FIG7 = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("name", sorted(FOLLOWERS_FIG7))
def test_figure7_leader_brings_any_follower_log_in_line(name):
    follower_terms = FOLLOWERS_FIG7[name]
    voters = (1, 2, 3)
    storages = {
        1: make_storage(voters, terms=LEADER_FIG7, hard_state=HardState(term=8)),
        2: make_storage(voters, terms=follower_terms, hard_state=HardState(term=7)),
        3: make_storage(voters),  # an empty node: votes for 1, which therefore wins whatever 2 thinks
    }
    c = Cluster(voters, storages=storages, pre_vote=False, check_quorum=False)
    c.campaign(1)
    assert c.leader() == 1
    c.propose(1, b"after")
    expected = LEADER_FIG7 + [9, 9]  # the new leader's empty entry, then the proposal
    for node_id in voters:
        assert c.log_terms(node_id) == expected
        assert c.raft(node_id).raft_log.committed == len(expected)
    # Entries the follower had beyond the leader's log (c, d) or from other terms (e, f) are gone.
    assert c.nodes[2].storage.entries(1, len(expected) + 1)[-1].data == b"after"


# --- paper figure 8 ---------------------------------------------------------------------------------------------
def test_figure8_leader_does_not_commit_an_old_term_entry_by_counting_replicas():
    # Leader of term 3 holds an entry of term 2 at index 2 (from a leader that failed before committing it).
    r = leader_with_log([1, 2])
    assert r.term == 3 and r.raft_log.last_index() == 3  # index 3: its own empty entry
    r.step(Message(type=MT.APPEND_RESP, from_=2, to=1, term=3, index=2))
    assert r.tracker.progress[2].match == 2
    assert r.raft_log.committed == 0  # a majority holds index 2, but it is from term 2: not committed
    r.step(Message(type=MT.APPEND_RESP, from_=2, to=1, term=3, index=3))
    assert r.raft_log.committed == 3  # an entry of term 3 reaches a majority: it and everything before commit


def test_figure8_scenario_an_uncommitted_old_entry_may_be_overwritten():
    """Figure 8 (a)-(b): S1 (term 1) spreads index 2 to S2 only; S5 wins term 2 with S3, S4 and overwrites
    index 2 everywhere. Correct only because nobody treated index 2 as committed."""
    ids = (1, 2, 3, 4, 5)
    c = Cluster(ids, pre_vote=False, check_quorum=False)
    c.campaign(1)
    for other in (3, 4, 5):
        c.cut(1, other)
    c.propose(1, b"s1-term1")
    assert c.log_terms(2) == [1, 1] and c.log_terms(3) == [1]
    assert c.raft(1).raft_log.committed == 1
    c.heal()
    for a in (1, 2):
        for b in (3, 4, 5):
            c.cut(a, b)
    c.campaign(5)
    assert c.raft(5).role == StateRole.LEADER and c.raft(5).term == 2
    c.heal()
    c.tick(5)
    for node_id in ids:
        assert c.log_terms(node_id) == [1, 2]
        assert all(e.data != b"s1-term1" for e in c.nodes[node_id].applied)
    assert c.leader() == 5


# --- fast back-off ----------------------------------------------------------------------------------------------
def count_rejections(leader_terms: list[int], follower_terms: list[int]) -> tuple[int, list[int]]:
    voters = (1, 2)
    storages = {
        1: make_storage(voters, terms=leader_terms, hard_state=HardState(term=max(leader_terms))),
        2: make_storage(voters, terms=follower_terms, hard_state=HardState(term=max(leader_terms))),
    }
    c = Cluster(voters, storages=storages, pre_vote=False, check_quorum=False)
    # Make 1 leader without 2's vote mattering: force it through the state machine directly.
    r1 = c.raft(1)
    r1.become_candidate()
    r1.become_leader()
    c.raft(2).step(Message(type=MT.HEARTBEAT, from_=1, to=2, term=r1.term))
    c.settle()
    rejections = sum(1 for m in c.delivered if m.type == MT.APPEND_RESP and m.reject)
    return rejections, c.log_terms(2)


def test_leader_side_back_off_skips_whole_terms():
    # etcd's example: L 1 3 3 3 5 5 5 5 5 / F 1 1 1 1 2 2 — one rejection, then the probe at index 1 succeeds.
    rejections, log = count_rejections([1, 3, 3, 3, 5, 5, 5, 5, 5], [1, 1, 1, 1, 2, 2])
    assert log == [1, 3, 3, 3, 5, 5, 5, 5, 5, 6]
    assert rejections <= 2


def test_follower_side_back_off_skips_its_divergent_tail():
    # L 1 3 3 3 3 3 3 3 7 / F 1 3 3 4 4 5 5 5 6: the follower answers with the last index of term <= 3.
    rejections, log = count_rejections([1, 3, 3, 3, 3, 3, 3, 3, 7], [1, 3, 3, 4, 4, 5, 5, 5, 6])
    assert log == [1, 3, 3, 3, 3, 3, 3, 3, 7, 8]
    assert rejections <= 2


def test_reject_hint_names_the_last_index_with_a_term_not_above_the_probe():
    storage = make_storage((1, 2), terms=[1, 3, 3, 4, 4, 5, 5, 5, 6], hard_state=HardState(term=6))
    f = Raft(Config(id=2, pre_vote=False), storage)
    f.step(Message(type=MT.APPEND, from_=1, to=2, term=7, index=8, log_term=3, commit=0))
    [resp] = f.msgs
    assert resp.reject and resp.index == 8
    assert (resp.reject_hint, resp.log_term) == (3, 3)


def test_follower_behind_rejects_with_its_last_index():
    storage = make_storage((1, 2), terms=[1, 1], hard_state=HardState(term=1))
    f = Raft(Config(id=2, pre_vote=False), storage)
    f.step(Message(type=MT.APPEND, from_=1, to=2, term=2, index=9, log_term=2))
    [resp] = f.msgs
    assert resp.reject and (resp.reject_hint, resp.log_term) == (2, 1)


# --- the follower's log -----------------------------------------------------------------------------------------
def test_follower_truncates_only_from_the_first_conflict():
    storage = make_storage((1, 2), terms=[1, 1, 2, 2], hard_state=HardState(term=2, commit=1))
    f = Raft(Config(id=2, pre_vote=False), storage)
    entries = (Entry(term=1, index=2, data=b"e2"), Entry(term=3, index=3, data=b"new"))
    f.step(Message(type=MT.APPEND, from_=1, to=2, term=3, index=1, log_term=1, entries=entries, commit=2))
    log = f.raft_log
    assert [log.term(i) for i in range(1, log.last_index() + 1)] == [1, 1, 3]
    assert log.committed == 2
    assert f.msgs[-1].index == 3 and not f.msgs[-1].reject


def test_stale_append_below_commit_is_answered_with_the_commit_index():
    storage = make_storage((1, 2), terms=[1, 1, 1], hard_state=HardState(term=1, commit=3))
    f = Raft(Config(id=2, pre_vote=False), storage)
    f.step(Message(type=MT.APPEND, from_=1, to=2, term=1, index=1, log_term=1,
                   entries=(Entry(term=1, index=2, data=b"e2"),), commit=1))
    assert f.msgs[-1].index == 3
    assert f.raft_log.last_index() == 3


def test_overwriting_a_committed_entry_is_refused_loudly():
    storage = make_storage((1, 2), terms=[1, 1, 1], hard_state=HardState(term=1, commit=3))
    f = Raft(Config(id=2, pre_vote=False), storage)
    with pytest.raises(LogInvariantError):
        f.raft_log.append([Entry(term=2, index=2)])
    with pytest.raises(LogInvariantError):
        f.raft_log.maybe_append(1, 1, 3, (Entry(term=2, index=2),))
    assert f.raft_log.last_index() == 3 and f.raft_log.term(2) == 1


def test_heartbeat_never_advances_a_follower_commit_past_its_known_match():
    c = Cluster()
    c.campaign(1)
    c.isolate(3)
    c.propose(1, b"x")
    assert c.raft(1).raft_log.committed == 2
    heartbeats = [m for m in c.raft(1).msgs if m.type == MT.HEARTBEAT]
    assert heartbeats == []
    c.heal()
    c.nodes[1].node.tick()
    rd = c.nodes[1].node.ready()
    to3 = [m for m in rd.messages if m.type == MT.HEARTBEAT and m.to == 3]
    assert to3 and to3[0].commit == 1  # 3 is only known to match up to 1
    c.nodes[1].node.advance(rd)


def test_commit_reaches_followers():
    c = Cluster()
    c.campaign(1)
    for k in range(5):
        c.propose(1, b"p%d" % k)
    c.tick(1)
    for node_id in (1, 2, 3):
        assert c.raft(node_id).raft_log.committed == 6
        assert [e.data for e in c.nodes[node_id].applied][-5:] == [b"p%d" % k for k in range(5)]


# --- proposals --------------------------------------------------------------------------------------------------
def test_follower_forwards_proposals_to_the_leader():
    c = Cluster()
    c.campaign(1)
    c.propose(2, b"via-follower")
    assert [e.data for e in c.nodes[1].applied][-1] == b"via-follower"


def test_proposal_without_a_leader_is_dropped():
    c = Cluster()
    with pytest.raises(ProposalDroppedError):
        c.nodes[1].node.propose(b"x")


def test_proposal_forwarding_can_be_disabled():
    c = Cluster(disable_proposal_forwarding=True)
    c.campaign(1)
    with pytest.raises(ProposalDroppedError):
        c.nodes[2].node.propose(b"x")


def test_uncommitted_tail_limit_pushes_back():
    r = leader_with_log([1], max_uncommitted_entries_size=10)
    r.propose([Entry(term=0, index=0, data=b"12345678")])
    with pytest.raises(ProposalDroppedError):
        r.propose([Entry(term=0, index=0, data=b"12345")])
    # Committing frees the budget.
    for follower in (2, 3):
        r.step(Message(type=MT.APPEND_RESP, from_=follower, to=1, term=r.term, index=r.raft_log.last_index()))
    r.reduce_uncommitted_size(tuple(r.raft_log.slice(1, r.raft_log.committed + 1)))
    r.propose([Entry(term=0, index=0, data=b"12345")])


# --- flow control -----------------------------------------------------------------------------------------------
def make_replicating_leader(**kwargs) -> Raft:
    r = leader_with_log([1], voters=(1, 2), **kwargs)
    r.step(Message(type=MT.APPEND_RESP, from_=2, to=1, term=r.term, index=r.raft_log.last_index()))
    assert r.tracker.progress[2].state == ProgressState.REPLICATE
    r.msgs.clear()
    return r


def test_probe_state_sends_one_append_until_answered():
    r = leader_with_log([1], voters=(1, 2))
    assert r.tracker.progress[2].state == ProgressState.PROBE
    r._send_append(2)
    for k in range(3):
        r.propose([Entry(term=0, index=0, data=b"p%d" % k)])
    appends = [m for m in r.msgs if m.type == MT.APPEND and m.to == 2]
    assert len(appends) == 1  # paused while probing
    r.msgs.clear()
    r.step(Message(type=MT.HEARTBEAT_RESP, from_=2, to=1, term=r.term))
    assert len([m for m in r.msgs if m.type == MT.APPEND]) == 1  # a heartbeat answer allows the next probe


def test_replicate_state_caps_messages_in_flight():
    r = make_replicating_leader(max_inflight_msgs=3)
    for k in range(10):
        r.propose([Entry(term=0, index=0, data=b"p%d" % k)])
    appends = [m for m in r.msgs if m.type == MT.APPEND]
    assert len(appends) == 3
    assert r.tracker.progress[2].is_paused()
    r.msgs.clear()
    # Acknowledging the first frees one slot: exactly one more append goes, carrying everything pending.
    r.step(Message(type=MT.APPEND_RESP, from_=2, to=1, term=r.term, index=appends[0].entries[-1].index))
    more = [m for m in r.msgs if m.type == MT.APPEND]
    assert len(more) == 1
    assert more[0].entries[-1].index == r.raft_log.last_index()


def test_heartbeat_answer_unblocks_a_full_window_so_lost_appends_are_recovered():
    r = make_replicating_leader(max_inflight_msgs=2)
    for k in range(4):
        r.propose([Entry(term=0, index=0, data=b"p%d" % k)])
    assert r.tracker.progress[2].is_paused()
    r.msgs.clear()
    r.step(Message(type=MT.HEARTBEAT_RESP, from_=2, to=1, term=r.term))
    assert any(m.type == MT.APPEND for m in r.msgs)


def test_inflight_byte_budget():
    r = make_replicating_leader(max_inflight_msgs=100, max_inflight_bytes=10)
    for k in range(5):
        r.propose([Entry(term=0, index=0, data=b"12345")])
    assert len([m for m in r.msgs if m.type == MT.APPEND]) == 2


def test_max_size_per_message_splits_but_always_sends_one_entry():
    r = make_replicating_leader(max_size_per_msg=8, max_inflight_msgs=100)
    big = b"x" * 20
    r.propose([Entry(term=0, index=0, data=big), Entry(term=0, index=0, data=b"abc"),
               Entry(term=0, index=0, data=b"def")])
    sizes = [[len(e.data) for e in m.entries] for m in r.msgs if m.type == MT.APPEND]
    assert sizes == [[20]]  # the oversized entry goes alone; the rest follow as acks come back
    r.msgs.clear()
    pr = r.tracker.progress[2]
    pr.become_probe()
    pr.next = r.raft_log.last_index() - 2
    r._send_append(2)
    [m] = [m for m in r.msgs if m.type == MT.APPEND]
    assert [len(e.data) for e in m.entries] == [20]


def test_rejection_in_replicate_state_falls_back_to_probe():
    r = make_replicating_leader()
    matched = r.tracker.progress[2].match
    r.propose([Entry(term=0, index=0, data=b"a")])  # lost on the way
    r.propose([Entry(term=0, index=0, data=b"b")])  # arrives: its previous entry is missing
    r.msgs.clear()
    r.step(Message(type=MT.APPEND_RESP, from_=2, to=1, term=r.term, index=matched + 1, reject=True,
                   reject_hint=matched, log_term=r.term))
    pr = r.tracker.progress[2]
    assert pr.state == ProgressState.PROBE
    [probe] = [m for m in r.msgs if m.type == MT.APPEND]
    assert probe.index == matched  # resend from just after the known match
    assert [e.data for e in probe.entries] == [b"a", b"b"]


def test_stale_rejection_is_ignored():
    r = make_replicating_leader()
    pr = r.tracker.progress[2]
    before = (pr.state, pr.next, pr.match)
    r.step(Message(type=MT.APPEND_RESP, from_=2, to=1, term=r.term, index=pr.match - 1, reject=True,
                   reject_hint=0))
    assert (pr.state, pr.next, pr.match) == before


def test_restart_keeps_term_vote_and_log():
    c = Cluster()
    c.campaign(1)
    c.propose(1, b"durable")
    storage = c.nodes[2].storage
    restarted = Raft(Config(id=2), storage)
    assert restarted.term == c.raft(2).term
    assert restarted.vote == 1
    assert restarted.raft_log.committed == c.raft(2).raft_log.committed
    assert restarted.raft_log.last_index() == 2
    assert restarted.role == StateRole.FOLLOWER


def test_acknowledgement_of_entries_replaced_before_the_ready_is_never_sent():
    # Found by the simulator (seed 2240 of a 3000-step sweep): a follower acknowledged index 3 to the leader of
    # term 2, then, before its Ready was taken, the leader of term 3 replaced its log from index 2. Sending the
    # old acknowledgement would let the term-2 leader count entries the follower never stored.
    storage = make_storage((1, 2, 3), terms=[1], hard_state=HardState(term=2))
    f = RawNode(Config(id=2, pre_vote=False), storage)
    f.step(Message(type=MT.APPEND, from_=1, to=2, term=2, index=1, log_term=1,
                   entries=(Entry(term=2, index=2, data=b"a"), Entry(term=2, index=3, data=b"b"))))
    f.step(Message(type=MT.APPEND, from_=3, to=2, term=3, index=1, log_term=1,
                   entries=(Entry(term=3, index=2, data=b"c"),)))
    rd = f.ready()
    assert [(m.to, m.index) for m in rd.messages if m.type == MT.APPEND_RESP] == [(3, 2)]
    assert [(e.index, e.term) for e in rd.entries] == [(2, 3)]
