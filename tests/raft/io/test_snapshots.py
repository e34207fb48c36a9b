"""Snapshot files: atomic, checksummed, newest wins, older ones pruned, damage refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddx_offchain.raft.logstore import CorruptSnapshotError, SnapshotStore
from ddx_offchain.raft.messages import ConfState, Snapshot, SnapshotMetadata


def snap(index: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(SnapshotMetadata(index=index, term=2, conf_state=ConfState(voters=(1, 2, 3))), data + bytes([index % 256]))


def test_save_and_load_latest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.load_latest() is None
    store.save(snap(10))
    store.save(snap(20, b""))
    assert SnapshotStore(tmp_path).load_latest() == snap(20, b"")


def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    for index in (10, 20, 30, 40):
        store.save(snap(index))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[-1].startswith(f"{40:016x}")


def test_leftover_temporary_file_is_not_a_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(snap(10))
    (tmp_path / f"{99:016x}-{2:016x}.snap.tmp").write_bytes(b"half written")
    again = SnapshotStore(tmp_path)
    assert again.load_latest() == snap(10)
    assert not list(tmp_path.glob("*.tmp")), "a crashed save's temporary file is removed at open"


def test_damaged_snapshot_is_refused_naming_the_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.save(snap(10, b"x" * 1000))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSnapshotError) as caught:
        store.load_latest()
    assert caught.value.path == path


def test_renamed_snapshot_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = store.save(snap(10))
    path.rename(tmp_path / f"{11:016x}-{2:016x}.snap")
    with pytest.raises(CorruptSnapshotError, match="does not match"):
        store.load_latest()


def test_empty_snapshot_is_not_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotStore(tmp_path).save(Snapshot())


def test_saves_from_two_threads_take_turns(tmp_path: Path, monkeypatch) -> None:
    """The runtime's snapshot thread and the log thread (a snapshot received from the leader) may both save:
    one temporary file, rename and prune at a time."""
    import threading

    from ddx_offchain.raft.logstore import snapshots as snapshot_files

    store = SnapshotStore(tmp_path)
    inside, release = threading.Event(), threading.Event()
    entered: list[int] = []
    original = snapshot_files.atomic_write

    def gated_write(path: Path, chunks: list[bytes]) -> None:
        entered.append(len(entered))
        if len(entered) == 1:
            inside.set()
            release.wait(5)
        original(path, chunks)

    monkeypatch.setattr(snapshot_files, "atomic_write", gated_write)
    first = threading.Thread(target=store.save, args=(snap(10),))
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=store.save, args=(snap(10),))  # same file name: same temporary file
    second.start()
    second.join(0.2)
    assert entered == [0], "the second save entered while the first was writing"
    release.set()
    first.join(5)
    second.join(5)
    assert entered == [0, 1] and store.load_latest() == snap(10)
