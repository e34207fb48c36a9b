"""Majority arithmetic over a set of voters (etcd-io/raft quorum/majority.go, single configuration)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping


class VoteResult(enum.IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(count: int) -> int:
    return count // 2 + 1


def committed_index(voters: Iterable[int], match: Mapping[int, int]) -> int:
    """The largest index acknowledged by a majority of voters (0 for an empty voter set is never used: the
    caller only asks when it is a voter or when voters exist)."""
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    if not indexes:
        return 0
    return indexes[majority(len(indexes)) - 1]


def vote_result(voters: Iterable[int], votes: Mapping[int, bool]) -> VoteResult:
    granted = rejected = missing = 0
    total = 0
    for v in voters:
        total += 1
        vote = votes.get(v)
        if vote is None:
            missing += 1
        elif vote:
            granted += 1
        else:
            rejected += 1
    q = majority(total)
    if granted >= q:
        return VoteResult.WON
    if granted + missing >= q:
        return VoteResult.PENDING
    return VoteResult.LOST
