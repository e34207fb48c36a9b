"""A simulated disk: writes land in a page cache at once and become durable only at fsync.

A crash keeps a random prefix of the unsynced writes (the kernel may have flushed some of them, in order) and
may tear the last one: a torn batch of entries keeps a prefix of its records, exactly what a log with a checksum
per record recovers to (part B's segment files). A torn hard state or snapshot record is dropped whole.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ddx_offchain.raft.messages import ConfState, Entry, HardState, Snapshot
from ddx_offchain.raft.storage import MemoryStorage


@dataclass(frozen=True, slots=True)
class WriteSnapshot:
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class WriteEntries:
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class WriteHardState:
    hard_state: HardState


Write = WriteSnapshot | WriteEntries | WriteHardState


def _apply(storage: MemoryStorage, write: Write) -> None:
    if isinstance(write, WriteEntries):
        storage.append(write.entries)
    elif isinstance(write, WriteHardState):
        storage.set_hard_state(write.hard_state)
    else:
        storage.apply_snapshot(write.snapshot)


def clone_storage(source: MemoryStorage) -> MemoryStorage:
    copy = MemoryStorage()
    snap = source.snapshot()
    if not snap.is_empty():
        copy.apply_snapshot(snap)
    first, last = source.first_index(), source.last_index()
    if last >= first:
        copy.append(source.entries(first, last + 1))
    copy.set_hard_state(source.hard_state())
    return copy


class SimDisk:
    def __init__(self, founders: tuple[int, ...]) -> None:
        """``founders``: bootstrap a founding node's log; () for a node added later (it starts empty)."""
        self.durable = MemoryStorage()
        self.live = MemoryStorage()  # what the running node reads: durable + page cache
        if founders:
            self.durable.bootstrap(founders)
            self.live.bootstrap(founders)
        self.pending: list[Write] = []

    def write(self, write: Write) -> None:
        self.pending.append(write)
        _apply(self.live, write)

    def fsync(self) -> None:
        for write in self.pending:
            _apply(self.durable, write)
        self.pending.clear()

    def save_snapshot(self, index: int, conf_state: ConfState, data: bytes, keep_entries: int) -> None:
        """Local compaction: the snapshot file is written atomically and synced before the log is trimmed."""
        for storage in (self.durable, self.live):
            storage.create_snapshot(index, conf_state, data)
            compact_to = index - keep_entries
            if compact_to > storage.first_index():
                storage.compact(compact_to)

    def crash(self, rng: random.Random) -> int:
        """Lose the page cache. Returns how many writes survived (the last one possibly torn)."""
        survivors = rng.randint(0, len(self.pending))
        for k in range(survivors):
            write = self.pending[k]
            last = k == survivors - 1
            if last and rng.random() < 0.5:
                if isinstance(write, WriteEntries) and len(write.entries) > 1:
                    keep = rng.randint(0, len(write.entries) - 1)
                    if keep:
                        _apply(self.durable, WriteEntries(write.entries[:keep]))
                continue  # torn: the checksum rejects the partial record
            _apply(self.durable, write)
        self.pending.clear()
        self.live = clone_storage(self.durable)
        return survivors
