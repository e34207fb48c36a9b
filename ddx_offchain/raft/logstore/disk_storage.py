"""Durable Storage: the write-ahead log and the snapshot files on disk, an in-memory copy for the core's reads.

This is etcd raftexample's arrangement (WAL + snap + MemoryStorage): the core reads only through the
`Storage` interface, served from memory; every write goes to disk first and reaches memory only once durable.

Threading: `write_batch` (disk only, blocking, releases the GIL in write/fsync) may run in a worker thread
while the event loop keeps stepping the core; `apply_to_memory` must then run on the loop thread, before
`RawNode.advance`, because the core reads the memory copy concurrently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ddx_offchain.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from ddx_offchain.raft.storage import NO_LIMIT, MemoryStorage, bootstrap_entries

from .errors import LogGapError, LogStoreError
from .snapshots import SnapshotStore
from .wal import DEFAULT_SEGMENT_BYTES, WalBatch, WriteAheadLog


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """What one Ready asks to persist, prepared on the loop thread and written by `write_batch`."""

    batch: WalBatch | None  # None: nothing that needs an fsync (e.g. only the commit index moved)
    entries: tuple[Entry, ...]
    hard_state: HardState | None
    snapshot: Snapshot | None


class DiskStorage:
    """Implements `ddx_offchain.raft.storage.Storage`, durably."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        keep_snapshots: int = 2,
    ) -> None:
        """Open (or create) the node's storage, recovering the log and the newest snapshot."""
        directory = Path(directory)
        self.directory = directory
        self.snapshots = SnapshotStore(directory / "snap", keep=keep_snapshots)
        self.memory = MemoryStorage()
        snapshot = self.snapshots.load_latest()
        self.wal, batches = WriteAheadLog.open(directory / "wal", segment_bytes=segment_bytes)
        hard_state, entries = _replay(batches, snapshot.metadata if snapshot else SnapshotMetadata(), self.wal)
        if snapshot is not None:
            self.memory.apply_snapshot(snapshot)
        self.memory.append(entries)
        if hard_state is not None:
            self.memory.set_hard_state(hard_state)
        self._durable_hard_state = hard_state or HardState()

    def is_empty(self) -> bool:
        """Nothing was ever written: no entry, no hard state, no snapshot."""
        return self.memory.last_index() == 0 and self.memory.hard_state().is_empty() and self.snapshot().is_empty()

    def bootstrap(self, voters) -> None:
        """Durably write the first log of a new cluster (storage.bootstrap_entries: one committed ADD_VOTER per
        founder); only on an empty storage. A node joining an existing cluster starts empty instead and learns
        the membership from the leader."""
        if not self.is_empty():
            raise LogStoreError(f"{self.directory} already holds a log; refusing to bootstrap over it")
        entries, hard_state = bootstrap_entries(voters)
        self.persist(hard_state, entries)

    # --- Storage (reads, served from memory) ----------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.memory.initial_state()

    def entries(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        return self.memory.entries(lo, hi, max_bytes)

    def term(self, index: int) -> int:
        return self.memory.term(index)

    def first_index(self) -> int:
        return self.memory.first_index()

    def last_index(self) -> int:
        return self.memory.last_index()

    def snapshot(self) -> Snapshot:
        return self.memory.snapshot()

    def hard_state(self) -> HardState:
        return self.memory.hard_state()

    # --- Writes ------------------------------------------------------------------------------------------------
    def prepare(
        self, hard_state: HardState | None, entries: tuple[Entry, ...] | list[Entry], snapshot: Snapshot | None
    ) -> PendingWrite:
        """Decide what a Ready needs on disk. Only entries, a snapshot, or a new term or vote need an fsync
        (etcd's MustSync): a commit index that moved alone is recomputed from a quorum after a restart, so it
        rides along with the next synced batch instead of costing an fsync of its own."""
        entries = tuple(entries)
        if snapshot is not None and snapshot.is_empty():
            snapshot = None
        durable = self._durable_hard_state
        term_or_vote_changed = hard_state is not None and (
            hard_state.term != durable.term or hard_state.vote != durable.vote
        )
        if entries or snapshot is not None or term_or_vote_changed:
            latest = hard_state if hard_state is not None else self.memory.hard_state()
            batch = WalBatch(
                entries=entries,
                hard_state=latest,
                installed_snapshot=snapshot.metadata if snapshot is not None else None,
            )
            self._durable_hard_state = latest
        else:
            batch = None
        return PendingWrite(batch, entries, hard_state, snapshot)

    def write_batch(self, pending: PendingWrite) -> None:
        """The blocking half: log frame (one fsync), then the snapshot file. Safe to run in a worker thread.

        The log's snapshot mark goes first: if the process dies before the snapshot file is durable, replay
        finds a mark with no file and treats the install as never having happened (nothing was acknowledged).
        """
        if pending.batch is not None:
            self.wal.write(pending.batch)
        if pending.snapshot is not None:
            self.snapshots.save(pending.snapshot)

    def apply_to_memory(self, pending: PendingWrite) -> None:
        """The loop-thread half: make the durable write visible to the core's reads."""
        if pending.snapshot is not None:
            self.memory.apply_snapshot(pending.snapshot)
        if pending.entries:
            self.memory.append(pending.entries)
        if pending.hard_state is not None:
            self.memory.set_hard_state(pending.hard_state)

    def persist(
        self, hard_state: HardState | None, entries: tuple[Entry, ...] | list[Entry], snapshot: Snapshot | None = None
    ) -> None:
        """prepare + write_batch + apply_to_memory in one call (for callers without a worker thread)."""
        pending = self.prepare(hard_state, entries, snapshot)
        self.write_batch(pending)
        self.apply_to_memory(pending)

    # --- Snapshots and compaction ---------------------------------------------------------------------------
    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Describe the state machine image `data` taken at applied `index` (not yet durable: see save_snapshot)."""
        return Snapshot(
            metadata=SnapshotMetadata(index=index, term=self.memory.term(index), conf_state=conf_state), data=data
        )

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Blocking: write the snapshot file durably. May run in a worker thread."""
        self.snapshots.save(snapshot)

    def install_local_snapshot(self, snapshot: Snapshot, keep_entries: int) -> None:
        """Loop thread, after save_snapshot: serve the snapshot to lagging followers and drop log entries below
        `index - keep_entries` from memory (kept entries let slightly slow followers catch up without a
        snapshot). The log segments the snapshot covers are deleted by `release_log`."""
        index = snapshot.metadata.index
        if index <= self.memory.snapshot().metadata.index:
            return
        self.memory.create_snapshot(index, snapshot.metadata.conf_state, snapshot.data)
        compact_to = index - keep_entries
        if compact_to > self.memory.first_index():
            self.memory.compact(compact_to)

    def release_log(self, snapshot_index: int) -> list[Path]:
        """Blocking: delete the log segments a durable snapshot fully covers."""
        return self.wal.release_through(snapshot_index)

    def close(self) -> None:
        """Flush a hard state whose commit moved without an fsync, then close the files."""
        latest = self.memory.hard_state()
        if latest != self._durable_hard_state:
            self.wal.write(WalBatch(hard_state=latest))
            self._durable_hard_state = latest
        self.wal.close()


def _replay(
    batches: list[WalBatch], base: SnapshotMetadata, wal: WriteAheadLog
) -> tuple[HardState | None, list[Entry]]:
    """Rebuild the log after the snapshot `base` from the log's batches, in write order."""
    hard_state: HardState | None = None
    log: list[Entry] = []  # log[k] has index base.index + 1 + k
    for position, batch in enumerate(batches):
        mark = batch.installed_snapshot
        if mark is not None:
            if mark.index > base.index:
                # The process died between the log mark and the snapshot file: the install never completed
                # and was never acknowledged. Nothing can have been written after it.
                if position != len(batches) - 1 or batch.entries:
                    raise LogStoreError(
                        f"log in {wal.directory} records a snapshot at {mark.index} but the newest snapshot file "
                        f"is at {base.index}"
                    )
                continue
            log.clear()
        if batch.entries:
            _append(log, base.index, batch.entries, wal)
        if batch.hard_state is not None:
            hard_state = batch.hard_state
    return hard_state, log


def _append(log: list[Entry], base_index: int, entries: tuple[Entry, ...], wal: WriteAheadLog) -> None:
    first = entries[0].index
    if first <= base_index:
        entries = entries[base_index + 1 - first :]
        if not entries:
            return
        first = entries[0].index
    position = first - base_index - 1
    if position > len(log):
        raise LogGapError(
            f"log in {wal.directory} jumps from index {base_index + len(log)} to {first}: entries are missing"
        )
    del log[position:]
    log.extend(entries)
