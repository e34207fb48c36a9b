"""What the leader knows about each follower (etcd-io/raft tracker/progress.go, inflights.go).

A follower is in one of three states:

- PROBE: the leader does not know where the logs match. It sends one APPEND at a time and waits for the answer
  (or the next heartbeat answer) before sending another; a rejection moves ``next`` back using the reject hint.
- REPLICATE: the logs match up to ``match``. The leader streams APPENDs optimistically (``next`` moves ahead on
  send) up to ``max_inflight`` messages / bytes not yet acknowledged.
- SNAPSHOT: the entries the follower needs are compacted; a snapshot is on its way and nothing else is sent
  until the transport reports how it went or the follower acknowledges it.
"""

from __future__ import annotations

import enum
from collections import deque

from ddx_offchain.raft.core.errors import LogInvariantError


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """APPENDs sent but not yet acknowledged, as (last index, payload bytes), oldest first."""

    __slots__ = ("_items", "_bytes", "max_count", "max_bytes")

    def __init__(self, max_count: int, max_bytes: int = 0) -> None:
        self._items: deque[tuple[int, int]] = deque()
        self._bytes = 0
        self.max_count = max_count
        self.max_bytes = max_bytes  # 0: no byte limit

    @property
    def count(self) -> int:
        return len(self._items)

    def add(self, last_index: int, size: int) -> None:
        self._items.append((last_index, size))
        self._bytes += size

    def free_le(self, index: int) -> None:
        """Acknowledged up to index: everything sent with a last index <= index is no longer in flight."""
        items = self._items
        while items and items[0][0] <= index:
            self._bytes -= items.popleft()[1]

    def free_first_one(self) -> None:
        if self._items:
            self._bytes -= self._items.popleft()[1]

    def full(self) -> bool:
        return len(self._items) >= self.max_count or (self.max_bytes > 0 and self._bytes >= self.max_bytes)

    def reset(self) -> None:
        self._items.clear()
        self._bytes = 0


class Progress:
    __slots__ = ("match", "next", "state", "pending_snapshot", "recent_active", "probe_sent", "inflights",
                 "is_learner")

    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0  # index of the snapshot in flight (SNAPSHOT state only)
        # Heard from since the last CheckQuorum round (the leader's own entry is always active).
        self.recent_active = False
        self.probe_sent = False  # PROBE state: an APPEND is out, wait before sending another
        self.inflights = Inflights(max_inflight, max_inflight_bytes)
        self.is_learner = is_learner

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # Coming back from a snapshot: the snapshot (if it arrived) covers pending_snapshot, so probe after it.
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged index. Returns whether match advanced."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected the APPEND whose previous index was ``rejected``; ``match_hint`` is where the
        logs may match (from the reject hint). Returns False for a stale rejection."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale: we already know it matches further
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # not the probe we are waiting for
        # never below match + 1: what the follower acknowledged it has (etcd's floor; a confused hint cannot undo it)
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, count: int, size: int) -> None:
        """An APPEND with ``count`` entries starting at ``next`` was just sent."""
        if self.next <= self.match:  # sending from at or below what the follower has: flow control is corrupt
            raise LogInvariantError(f"progress next {self.next} not above match {self.match}")
        if self.state == ProgressState.REPLICATE:
            if count > 0:
                last = self.next + count - 1
                self.next = last + 1
                self.inflights.add(last, size)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True
