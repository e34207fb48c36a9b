"""Majority arithmetic and the per-follower progress state machine (etcd's quorum/ and tracker/ tables)."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.core.progress import Inflights, Progress, ProgressState
from ddx_offchain.raft.core.quorum import VoteResult, committed_index, vote_result


@pytest.mark.parametrize(
    "match, expected",
    [
        ({1: 5}, 5),
        ({1: 5, 2: 3}, 3),  # two voters: both must have it
        ({1: 5, 2: 3, 3: 4}, 4),
        ({1: 5, 2: 0, 3: 0}, 0),
        ({1: 9, 2: 8, 3: 7, 4: 6}, 7),  # four voters: three of them
        ({1: 9, 2: 8, 3: 7, 4: 6, 5: 1}, 7),
    ],
)
def test_committed_index_is_the_highest_index_a_majority_holds(match, expected):
    assert committed_index(match.keys(), match) == expected


@pytest.mark.parametrize(
    "voters, votes, expected",
    [
        ((1,), {}, VoteResult.PENDING),
        ((1,), {1: True}, VoteResult.WON),
        ((1, 2), {1: True}, VoteResult.PENDING),
        ((1, 2), {1: True, 2: False}, VoteResult.LOST),
        ((1, 2, 3), {1: True, 2: False}, VoteResult.PENDING),
        ((1, 2, 3), {1: True, 3: True}, VoteResult.WON),
        ((1, 2, 3), {2: False, 3: False}, VoteResult.LOST),
        ((1, 2, 3), {1: True, 4: True}, VoteResult.PENDING),  # a non-voter's vote does not count
    ],
)
def test_vote_result(voters, votes, expected):
    assert vote_result(voters, votes) == expected


def test_inflights_free_up_to_an_index_and_respect_both_limits():
    inf = Inflights(max_count=3, max_bytes=100)
    inf.add(5, 10)
    inf.add(7, 10)
    assert not inf.full()
    inf.add(9, 10)
    assert inf.full()
    inf.free_le(6)
    assert inf.count == 2 and not inf.full()
    inf.add(12, 90)
    assert inf.full()  # byte budget
    inf.free_first_one()
    assert inf.count == 2


def test_progress_transitions():
    pr = Progress(next_index=11, max_inflight=2, max_inflight_bytes=0, is_learner=False)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(3, 30)
    assert pr.is_paused()  # one probe at a time
    assert pr.maybe_update(10) and pr.match == 10 and pr.next == 11 and not pr.is_paused()
    pr.become_replicate()
    pr.sent_entries(2, 20)
    assert pr.next == 13
    pr.sent_entries(1, 10)
    assert pr.is_paused()  # two messages in flight
    assert not pr.maybe_decr_to(9, 0)  # stale rejection: below match
    assert pr.maybe_decr_to(12, 5) and pr.next == 11
    pr.become_snapshot(20)
    assert pr.is_paused() and pr.pending_snapshot == 20
    pr.become_probe()
    assert pr.state == ProgressState.PROBE and pr.next == 21  # after the snapshot, not after the old match


def test_probe_rejection_uses_the_hint_but_never_goes_below_one():
    pr = Progress(next_index=11, max_inflight=2, max_inflight_bytes=0, is_learner=False)
    assert not pr.maybe_decr_to(5, 2)  # not the probe we sent (next - 1 == 10)
    assert pr.maybe_decr_to(10, 3) and pr.next == 4
    assert pr.maybe_decr_to(3, 0) and pr.next == 1
