"""Always-on invariants of the Raft core (TigerBeetle style: checked in production, not `assert`, which `python -O`
strips). Each fires, with LogInvariantError, when the state it guards is corrupted directly."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import LogInvariantError
from ddx_offchain.raft.core.progress import Progress
from ddx_offchain.raft.core.raft import Raft
from ddx_offchain.raft.messages import NO_NODE, ConfState, Entry, HardState
from ddx_offchain.raft.storage import MemoryStorage


def follower() -> Raft:
    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    storage.append([Entry(term=1, index=1), Entry(term=1, index=2), Entry(term=1, index=3)])
    storage.set_hard_state(HardState(term=1, commit=2))
    return Raft(Config(id=2), storage)


def test_commit_beyond_the_log_is_refused():
    r = follower()
    with pytest.raises(LogInvariantError, match="beyond the last index"):
        r.raft_log.commit_to(r.raft_log.last_index() + 1)


def test_applied_outside_applied_and_commit_is_refused():
    r = follower()
    with pytest.raises(LogInvariantError, match="out of range"):
        r.raft_log.applied_to(r.raft_log.committed + 1)


def test_overwriting_a_committed_entry_is_refused():
    r = follower()
    with pytest.raises(LogInvariantError, match="below the commit index"):
        r.raft_log.append([Entry(term=2, index=2)])


def test_the_term_never_goes_back():
    r = follower()
    r.become_follower(5, NO_NODE)
    with pytest.raises(LogInvariantError, match="go back"):
        r.become_follower(4, NO_NODE)


def test_one_vote_per_term():
    r = follower()
    r.vote = 3  # already voted for 3 in this term
    with pytest.raises(LogInvariantError, match="second vote"):
        r._record_vote(1)
    r._record_vote(3)  # the same vote again is fine (a retransmitted request)


def test_progress_sends_only_above_match():
    p = Progress(next_index=4, max_inflight=4, max_inflight_bytes=0, is_learner=False)
    p.maybe_update(3)
    p.sent_entries(1, 10)
    p.next = p.match  # corrupted: the next append would start at or below what the follower has
    with pytest.raises(LogInvariantError, match="not above match"):
        p.sent_entries(1, 10)


def test_a_probe_never_falls_below_what_the_follower_acknowledged():
    p = Progress(next_index=11, max_inflight=4, max_inflight_bytes=0, is_learner=False)
    p.maybe_update(10)
    p.next = 12
    assert p.maybe_decr_to(11, 2)  # a hint far below the acknowledged match
    assert p.next == p.match + 1 == 11
