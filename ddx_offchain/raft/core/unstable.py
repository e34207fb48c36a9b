"""The part of the log not yet on stable storage (etcd-io/raft log_unstable.go).

``entries[k]`` has index ``offset + k``. A snapshot received from the leader also waits here until the
application persists it. Entries may be replaced (a new leader overwrote a conflicting tail) before they are
persisted, which is why ``stable_to`` checks the term as well as the index.
"""

from __future__ import annotations

from ddx_offchain.raft.messages import Entry, Snapshot


class Unstable:
    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == index:
                return snap.metadata.term
            return None
        k = index - self.offset
        if k < len(self.entries):
            return self.entries[k].term
        if not self.entries and self.snapshot is not None and self.snapshot.metadata.index == index:
            return self.snapshot.metadata.term
        return None

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to index (with that term at index) are now on stable storage."""
        t = self.maybe_term(index)
        if t is None or t != term or index < self.offset:
            return  # replaced since the Ready was taken, or already stable
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.metadata.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif first <= self.offset:
            # Replaces everything unstable (and, once persisted, the stable tail from ``first`` on).
            self.offset = first
            self.entries = list(entries)
        else:
            del self.entries[first - self.offset :]
            self.entries.extend(entries)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]
