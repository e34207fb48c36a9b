"""What the Raft core reads from stable storage (etcd-io/raft's Storage interface), plus an in-memory version.

The core only ever *reads* through ``Storage``; the application writes (entries, hard state, snapshots) as told by
each ``Ready`` and then calls ``RawNode.advance``. Reads must reflect every write made so far, synced or not.

Index conventions: the log holds entries ``first_index() .. last_index()``; the entry just before
``first_index()`` is covered by the latest snapshot, and ``term(first_index() - 1)`` must still answer (the
snapshot's term) so the leader can build the APPEND that follows a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ddx_offchain.raft.messages import (
    EMPTY_HARD_STATE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMetadata,
    encode_conf_change,
    entry_size,
)

from ..errors import DdxError

NO_LIMIT = (1 << 63) - 1


class StorageError(DdxError):
    """Base class for the typed errors a Storage raises."""


class CompactedError(StorageError):
    """The requested index is older than the latest snapshot: its entries are gone."""


class UnavailableError(StorageError):
    """The requested index is beyond the last entry."""


class SnapshotOutOfDateError(StorageError):
    """The snapshot being applied or created is older than the one already held."""


class SnapshotTemporarilyUnavailableError(StorageError):
    """The snapshot is being prepared; the leader retries later (the follower stays in probe)."""


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership as of the last snapshot plus applied conf changes."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi). At least one entry is returned even if it exceeds max_bytes.
        Raises CompactedError if lo < first_index(), UnavailableError if hi > last_index() + 1."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at index, for index in [first_index() - 1, last_index()].
        Raises CompactedError below, UnavailableError above."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot; may raise SnapshotTemporarilyUnavailableError."""
        ...


def limit_size(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix within max_bytes, but never fewer than one entry (progress must always be possible)."""
    if max_bytes >= NO_LIMIT or len(entries) <= 1:
        return entries
    total = entry_size(entries[0])
    for k in range(1, len(entries)):
        total += entry_size(entries[k])
        if total > max_bytes:
            return entries[:k]
    return entries


def bootstrap_entries(voters: Iterable[int]) -> tuple[list[Entry], HardState]:
    """The first log of a new cluster (etcd's Bootstrap): one committed ADD_VOTER entry per founding voter at
    term 1, and the hard state that commits them. Every founder writes exactly these; nodes added later learn
    the founding membership by replaying (or receiving a snapshot of) this log, so the membership is always in
    the log or a snapshot, never only in a node's configuration."""
    ids = sorted(set(voters))
    if not ids or ids[0] <= 0:
        raise ValueError("a cluster needs at least one voter, with positive ids")
    entries = [
        Entry(
            term=1,
            index=k + 1,
            type=EntryType.CONF_CHANGE,
            data=encode_conf_change(ConfChange(type=ConfChangeType.ADD_VOTER, node_id=node_id)),
        )
        for k, node_id in enumerate(ids)
    ]
    return entries, HardState(term=1, vote=0, commit=len(entries))


class MemoryStorage:
    """Storage kept in memory: used by tests and the simulator, and as the read cache of part B's durable log.

    ``_ents[0]`` is a dummy entry carrying the snapshot's index and term (etcd's layout), so every offset
    computation is ``index - _ents[0].index``.
    """

    def __init__(self, conf_state: ConfState | None = None) -> None:
        """``conf_state`` sets a fixed initial membership, as if from a snapshot at index 0 (handy in tests of a
        fixed cluster; a node added later cannot learn it, so real clusters start with ``bootstrap``)."""
        self._hard_state = EMPTY_HARD_STATE
        self._snapshot = Snapshot(metadata=SnapshotMetadata(conf_state=conf_state or ConfState()))
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # --- Storage -------------------------------------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} is compacted (snapshot at {offset})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries up to {hi - 1} requested, last index is {self.last_index()}")
        if lo >= hi:
            return []
        return limit_size(self._ents[lo - offset : hi - offset], max_bytes)

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(f"term of {index} is compacted (snapshot at {offset})")
        if index - offset >= len(self._ents):
            raise UnavailableError(f"term of {index} requested, last index is {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- Writes (what the application does with a Ready) ---------------------------------------------------
    def bootstrap(self, voters: Iterable[int]) -> None:
        """Write the first log of a new cluster (see bootstrap_entries); only on an empty storage."""
        if self.last_index() != 0 or not self._hard_state.is_empty():
            raise ValueError("bootstrap needs an empty storage")
        entries, hard_state = bootstrap_entries(voters)
        self.append(entries)
        self._hard_state = hard_state

    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        if snapshot.metadata.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {snapshot.metadata.index} is not newer than {self._snapshot.metadata.index}"
            )
        self._snapshot = snapshot
        self._ents = [Entry(term=snapshot.metadata.term, index=snapshot.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the application state at ``index`` (which must be applied, hence in the log)."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(f"snapshot at {index} is not newer than {self._snapshot.metadata.index}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} is beyond the last index {self.last_index()}")
        metadata = SnapshotMetadata(index=index, term=self.term(index), conf_state=conf_state)
        self._snapshot = Snapshot(metadata=metadata, data=data)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before ``compact_index`` (which becomes the dummy entry). Callers compact only up to
        an index covered by a snapshot they hold."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise CompactedError(f"already compacted to {offset}")
        if compact_index > self.last_index():
            raise UnavailableError(f"compact index {compact_index} is beyond the last index {self.last_index()}")
        kept = self._ents[compact_index - offset :]
        self._ents = [Entry(term=kept[0].term, index=kept[0].index)] + kept[1:]

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append entries, truncating any existing suffix they conflict with (Ready.entries may overwrite an
        unstable tail). Entries older than the snapshot are ignored."""
        if not entries:
            return
        first = self.first_index()
        last_new = entries[0].index + len(entries) - 1
        if last_new < first:
            return
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise UnavailableError(
                f"missing log entry: last index {self.last_index()}, appending at {entries[0].index}"
            )
        del self._ents[offset:]
        self._ents.extend(entries)
