"""The node's view of the Raft log: stable storage plus the unstable tail (etcd-io/raft log.go).

Index bookkeeping: ``applied <= applying <= committed <= last_index()``. ``committed`` only moves forward, and
entries at or below it are never overwritten (LogInvariantError otherwise: that would be a safety bug).
"""

from __future__ import annotations

from ddx_offchain.raft.core.errors import LogInvariantError
from ddx_offchain.raft.core.unstable import Unstable
from ddx_offchain.raft.messages import Entry, Snapshot
from ddx_offchain.raft.storage import NO_LIMIT, CompactedError, Storage, UnavailableError, limit_size


class RaftLog:
    __slots__ = ("storage", "unstable", "committed", "applied", "applying", "max_applying_bytes")

    def __init__(self, storage: Storage, max_applying_bytes: int = NO_LIMIT) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.applying = first - 1
        self.max_applying_bytes = max_applying_bytes

    # --- indexes and terms -----------------------------------------------------------------------------------
    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, index: int) -> int:
        """Term at index for index in [first_index()-1, last_index()]; raises CompactedError/UnavailableError."""
        t = self.unstable.maybe_term(index)
        if t is not None:
            return t
        if index + 1 < self.first_index():
            raise CompactedError(f"term of {index} is compacted")
        if index > self.last_index():
            raise UnavailableError(f"term of {index} is beyond the last index {self.last_index()}")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Vote rule (paper 5.4.1): the candidate's log is at least as up to date as ours."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and last_index >= self.last_index())

    # --- appending -------------------------------------------------------------------------------------------
    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> tuple[int, int] | None:
        """Follower side of APPEND: if our log has (index, log_term), append ``entries`` after it (dropping only
        the conflicting suffix). Returns (the last index the message covers, the first index of ours that was
        replaced or 0), or None if the previous entry does not match."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        replaced = 0
        if conflict:
            if conflict <= self.committed:
                raise LogInvariantError(f"entry {conflict} conflicts with committed entry (commit {self.committed})")
            if conflict <= self.last_index():
                replaced = conflict
            self.append(list(entries[conflict - (index + 1) :]))
        self.commit_to(min(committed, last_new))
        return last_new, replaced

    def append(self, entries: list[Entry]) -> int:
        if not entries:
            return self.last_index()
        after = entries[0].index - 1
        if after < self.committed:
            raise LogInvariantError(f"append after {after} is below the commit index {self.committed}")
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def find_conflict(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry whose term differs from ours (or that we lack); 0 if all match."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= ``index`` whose term is <= ``term``, with that term (fast back-off: every entry
        above it has a larger term, so it cannot match an entry of ``term`` or below). (index, 0) if unknown."""
        while index > 0:
            try:
                t = self.term(index)
            except (CompactedError, UnavailableError):
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # --- reading ---------------------------------------------------------------------------------------------
    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def has_unstable_entries(self) -> bool:
        return bool(self.unstable.entries)

    def unstable_snapshot(self) -> Snapshot | None:
        return self.unstable.snapshot

    def has_pending_snapshot(self) -> bool:
        return self.unstable.snapshot is not None

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def has_next_committed_entries(self) -> bool:
        if self.has_pending_snapshot():
            return False  # the snapshot must be applied first
        return self.committed > self.applying

    def next_committed_entries(self) -> list[Entry]:
        if self.has_pending_snapshot():
            return []
        lo = self.applying + 1
        hi = self.committed + 1
        if lo >= hi:
            return []
        return self.slice(lo, hi, self.max_applying_bytes)

    def next_durable_committed_entries(self) -> list[Entry]:
        """Committed entries that may be applied outside a Ready: those already on stable storage, and only when
        everything handed out before is applied (so the order of application never changes). On a leader every
        committed entry of its term is on its stable storage (a follower acknowledges only what the leader sent
        after persisting it), so this is what lets the leader apply while its next batch is being written."""
        if self.unstable.snapshot is not None or self.applying != self.applied:
            return []
        lo = self.applying + 1
        hi = min(self.committed, self.unstable.offset - 1) + 1
        if lo >= hi:
            return []
        return self.slice(lo, hi, self.max_applying_bytes)

    def entries(self, lo: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        last = self.last_index()
        if lo > last:
            return []
        return self.slice(lo, last + 1, max_bytes)

    def slice(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi) from storage and/or the unstable tail; raises CompactedError / UnavailableError."""
        if lo < self.first_index():
            raise CompactedError(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"slice up to {hi - 1} beyond last index {self.last_index()}")
        if lo >= hi:
            return []
        offset = self.unstable.offset
        result: list[Entry] = []
        if lo < offset:
            result = list(self.storage.entries(lo, min(hi, offset), max_bytes))
            if len(result) < min(hi, offset) - lo:
                return result  # hit the byte limit inside storage
        if hi > offset:
            result.extend(self.unstable.slice(max(lo, offset), hi))
        return limit_size(result, max_bytes)

    # --- moving the markers ----------------------------------------------------------------------------------
    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise LogInvariantError(f"commit {index} is beyond the last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Leader: commit up to index only if that entry is from the current term (paper 5.4.2, figure 8)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def accept_applying(self, index: int) -> None:
        self.applying = max(self.applying, index)

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise LogInvariantError(f"applied {index} out of range [{self.applied}, {self.committed}]")
        self.applied = index
        self.applying = max(self.applying, index)

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.metadata.index
        self.unstable.restore(snapshot)
