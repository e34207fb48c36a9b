"""The write-ahead log: batching, recovery from torn tails, refusal of corrupted segments, logical truncation,
snapshot marks and compaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddx_offchain.raft.logstore import CorruptSegmentError, DiskStorage, LogGapError, LogStoreError, WalBatch, WriteAheadLog
from ddx_offchain.raft.logstore.segment import FRAME_HEADER, MAGIC
from ddx_offchain.raft.messages import (
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    decode_conf_change,
)


def entries(first: int, last: int, term: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(term=term, index=i, data=bytes([i % 251]) * size) for i in range(first, last + 1)]


def segments(directory: Path) -> list[Path]:
    return sorted((directory / "wal").glob("*.wal"))


def reopen(directory: Path, **kwargs) -> DiskStorage:
    return DiskStorage(directory, **kwargs)


def test_entries_and_hard_state_survive_reopen(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(term=2, vote=1, commit=0), entries(1, 50, term=2))
    storage.persist(HardState(term=2, vote=1, commit=40), entries(51, 60, term=2))
    storage.wal.close()
    again = reopen(tmp_path)
    assert again.first_index() == 1 and again.last_index() == 60
    assert again.entries(1, 61) == entries(1, 50, term=2) + entries(51, 60, term=2)
    assert again.hard_state() == HardState(term=2, vote=1, commit=40)
    assert again.initial_state()[0] == HardState(term=2, vote=1, commit=40)


def test_one_fsync_per_batch_and_none_for_a_commit_only_change(tmp_path: Path, monkeypatch) -> None:
    storage = reopen(tmp_path)
    syncs: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real(fd))[1])
    storage.persist(HardState(1, 1, 0), entries(1, 1000))
    assert len(syncs) == 1, "a thousand entries and the hard state cost exactly one fsync"
    storage.persist(HardState(1, 1, 500), [])
    assert len(syncs) == 1, "only the commit index moved: no fsync (it is re-learned from a quorum)"
    storage.persist(HardState(2, 3, 500), [])
    assert len(syncs) == 2, "a new term or vote is synced before anything that depends on it is sent"
    storage.persist(HardState(2, 3, 800), [])
    assert len(syncs) == 2
    storage.close()
    assert len(syncs) == 3, "close flushes the last commit index"
    assert reopen(tmp_path).hard_state() == HardState(2, 3, 800)


def test_conflicting_suffix_is_truncated_on_replay(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 10, term=1))
    storage.persist(HardState(2, 2, 0), entries(6, 8, term=2))  # a new leader overwrote 6.. with its own
    assert storage.last_index() == 8
    storage.wal.close()
    again = reopen(tmp_path)
    assert again.last_index() == 8
    assert [e.term for e in again.entries(1, 9)] == [1] * 5 + [2] * 3


def test_torn_tail_is_cut_back_to_the_last_valid_frame(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 10))
    storage.persist(HardState(1, 1, 0), entries(11, 20))
    storage.wal.close()
    path = segments(tmp_path)[-1]
    intact = path.stat().st_size
    with open(path, "ab") as handle:  # the next batch was being written when the power went
        handle.write(FRAME_HEADER.pack(5000, 123, 456)[:7])
    again = reopen(tmp_path)
    assert again.last_index() == 20
    assert path.stat().st_size == intact, "the torn bytes are truncated away"
    again.persist(HardState(1, 1, 0), entries(21, 25))  # and appending continues cleanly after them
    again.wal.close()
    assert reopen(tmp_path).last_index() == 25


@pytest.mark.parametrize("damage", ["cut_payload", "zero_pages", "zero_header"])
def test_torn_last_frame_variants_lose_only_that_frame(tmp_path: Path, damage: str) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 10))
    before = segments(tmp_path)[-1].stat().st_size
    storage.persist(HardState(1, 1, 0), entries(11, 400, size=40))
    storage.wal.close()
    path = segments(tmp_path)[-1]
    data = bytearray(path.read_bytes())
    if damage == "cut_payload":
        del data[before + 100 :]
    elif damage == "zero_pages":  # the file grew, but the pages of the last write never reached the disk
        data[before + FRAME_HEADER.size + 50 :] = bytes(len(data) - before - FRAME_HEADER.size - 50)
    else:
        data[before:] = bytes(len(data) - before)
    path.write_bytes(bytes(data))
    again = reopen(tmp_path)
    assert again.last_index() == 10
    assert path.stat().st_size == before


def test_corruption_before_the_tail_is_refused_with_file_and_offset(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 10))
    second_frame = segments(tmp_path)[-1].stat().st_size
    storage.persist(HardState(1, 1, 0), entries(11, 20))
    storage.persist(HardState(1, 1, 0), entries(21, 30))
    storage.wal.close()
    path = segments(tmp_path)[-1]
    data = bytearray(path.read_bytes())
    data[second_frame + FRAME_HEADER.size + 3] ^= 0x01  # one bit flipped in an acknowledged frame
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSegmentError) as caught:
        reopen(tmp_path)
    assert caught.value.path == path and caught.value.offset == second_frame
    assert str(path) in str(caught.value) and f"offset {second_frame}" in str(caught.value)
    assert path.read_bytes() == bytes(data), "nothing is changed when refusing to start"


def test_damaged_frame_header_in_the_middle_is_corruption(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 10))
    second_frame = segments(tmp_path)[-1].stat().st_size
    storage.persist(HardState(1, 1, 0), entries(11, 20))
    storage.wal.close()
    path = segments(tmp_path)[-1]
    data = bytearray(path.read_bytes())
    data[second_frame] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSegmentError) as caught:
        reopen(tmp_path)
    assert caught.value.offset == second_frame


def test_sealed_segment_damage_is_never_treated_as_a_torn_tail(tmp_path: Path) -> None:
    storage = reopen(tmp_path, segment_bytes=2000)
    for first in range(1, 200, 20):
        storage.persist(HardState(1, 1, 0), entries(first, first + 19))
    storage.wal.close()
    sealed = segments(tmp_path)[0]
    assert len(segments(tmp_path)) >= 2
    with open(sealed, "r+b") as handle:
        handle.truncate(sealed.stat().st_size - 3)
    with pytest.raises(CorruptSegmentError) as caught:
        reopen(tmp_path)
    assert caught.value.path == sealed


def test_bad_magic_is_corruption(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 3))
    storage.wal.close()
    path = segments(tmp_path)[-1]
    path.write_bytes(b"NOTAWAL!" + path.read_bytes()[len(MAGIC) :])
    with pytest.raises(CorruptSegmentError) as caught:
        reopen(tmp_path)
    assert caught.value.offset == 0


def test_segments_roll_over_and_carry_the_hard_state(tmp_path: Path) -> None:
    storage = reopen(tmp_path, segment_bytes=4096)
    for first in range(1, 1000, 50):
        storage.persist(HardState(3, 2, 0), entries(first, first + 49))
    storage.wal.close()
    assert len(segments(tmp_path)) > 3
    again = reopen(tmp_path, segment_bytes=4096)
    assert again.last_index() == 1000 and again.hard_state().term == 3


def test_compaction_releases_covered_segments_only(tmp_path: Path) -> None:
    storage = reopen(tmp_path, segment_bytes=4096)
    for first in range(1, 1000, 50):
        storage.persist(HardState(1, 1, first + 49), entries(first, first + 49))
    before = segments(tmp_path)
    snapshot = storage.create_snapshot(600, ConfState(voters=(1,)), b"state at 600")
    storage.save_snapshot(snapshot)
    storage.install_local_snapshot(snapshot, keep_entries=100)
    assert storage.first_index() == 501, "the 100 entries just below the snapshot stay for slow followers"
    released = storage.release_log(600)
    assert released and set(released) < set(before)
    storage.close()
    again = reopen(tmp_path, segment_bytes=4096)
    assert again.snapshot().metadata.index == 600 and again.snapshot().data == b"state at 600"
    assert again.first_index() == 601 and again.last_index() == 1000
    assert again.entries(601, 1001) == [e for f in range(1, 1000, 50) for e in entries(f, f + 49)][600:]


def test_installed_snapshot_voids_entries_written_before_it(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 0), entries(1, 120, term=1))  # a long stale tail from an old leader
    received = Snapshot(SnapshotMetadata(index=100, term=3, conf_state=ConfState(voters=(1, 2, 3))), b"image")
    storage.persist(HardState(3, 0, 100), [], received)
    assert storage.last_index() == 100
    storage.wal.close()
    again = reopen(tmp_path)
    assert again.snapshot() == received
    assert again.last_index() == 100, "entries 101..120 of term 1 must not come back after the term-3 snapshot"
    assert again.initial_state()[1] == ConfState(voters=(1, 2, 3))


def test_crash_between_snapshot_mark_and_file_discards_the_install(tmp_path: Path) -> None:
    storage = reopen(tmp_path)
    storage.persist(HardState(1, 1, 5), entries(1, 5))
    received = Snapshot(SnapshotMetadata(index=100, term=3), b"image")
    storage.wal.write(WalBatch(hard_state=HardState(3, 0, 100), installed_snapshot=received.metadata))
    storage.wal.close()  # ... and the process died before the snapshot file was written
    again = reopen(tmp_path)
    assert again.snapshot().is_empty() and again.last_index() == 5


def test_a_gap_in_the_log_is_an_error(tmp_path: Path) -> None:
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    wal.write(WalBatch(entries=tuple(entries(1, 3)), hard_state=HardState(1, 1, 0)))
    wal.write(WalBatch(entries=tuple(entries(7, 9))))
    wal.close()
    with pytest.raises(LogGapError):
        reopen(tmp_path)


def test_a_missing_segment_in_the_sequence_is_an_error(tmp_path: Path) -> None:
    storage = reopen(tmp_path, segment_bytes=1024)
    for first in range(1, 300, 30):
        storage.persist(HardState(1, 1, 0), entries(first, first + 29))
    storage.wal.close()
    segments(tmp_path)[1].unlink()
    with pytest.raises(LogStoreError):
        reopen(tmp_path)


def test_bootstrap_writes_the_founding_membership_durably_once(tmp_path: Path) -> None:
    fresh = reopen(tmp_path)
    assert fresh.is_empty()
    fresh.bootstrap((3, 1, 2))
    fresh.wal.close()
    again = reopen(tmp_path)
    assert not again.is_empty()
    assert again.last_index() == 3 and again.hard_state() == HardState(term=1, vote=0, commit=3)
    changes = [decode_conf_change(e.data) for e in again.entries(1, 4)]
    assert [(c.type, c.node_id) for c in changes] == [(ConfChangeType.ADD_VOTER, n) for n in (1, 2, 3)]
    with pytest.raises(LogStoreError, match="refusing to bootstrap"):
        again.bootstrap((1, 2, 3))
