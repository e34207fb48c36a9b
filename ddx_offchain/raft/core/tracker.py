"""Membership and per-peer progress on one node (etcd-io/raft tracker/tracker.go, single configuration).

Membership changes one node at a time (thesis 4.1): any two consecutive configurations share a majority, so two
leaders can never be elected in the same term across a change, provided at most one change is in flight.
"""

from __future__ import annotations

from ddx_offchain.raft.core import quorum
from ddx_offchain.raft.core.progress import Progress
from ddx_offchain.raft.messages import ConfState


class ProgressTracker:
    __slots__ = ("voters", "learners", "progress", "votes", "max_inflight", "max_inflight_bytes")

    def __init__(self, max_inflight: int, max_inflight_bytes: int) -> None:
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def conf_state(self) -> ConfState:
        return ConfState(voters=tuple(sorted(self.voters)), learners=tuple(sorted(self.learners)))

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        return Progress(next_index, self.max_inflight, self.max_inflight_bytes, is_learner)

    def sorted_ids(self) -> list[int]:
        return sorted(self.progress)

    def is_voter(self, node_id: int) -> bool:
        return node_id in self.voters

    def committed(self) -> int:
        return quorum.committed_index(self.voters, {v: self.progress[v].match for v in self.voters})

    def quorum_active(self) -> bool:
        votes = {v: self.progress[v].recent_active for v in self.voters}
        return quorum.vote_result(self.voters, votes) == quorum.VoteResult.WON

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def tally_votes(self) -> tuple[int, int, quorum.VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, quorum.vote_result(self.voters, self.votes)
