"""Snapshots: round trips, and every way a file can be damaged is refused with a typed error naming it."""

import hashlib
import random
import struct

import pytest

from ddx_offchain.protocol.hashing import EMPTY
from ddx_offchain.tree import (
    SnapshotChecksumMismatch,
    SnapshotError,
    SnapshotFormatError,
    SnapshotRootMismatch,
    SnapshotTruncated,
    StateTree,
)
from ddx_offchain.tree.snapshot import HEADER_BYTES, MAGIC


def _tree(n: int = 200, keep_values: bool = True, seed: int = 1) -> StateTree:
    rnd = random.Random(seed)
    return StateTree.from_items({rnd.randbytes(32): rnd.randbytes(rnd.randint(0, 100)) for _ in range(n)}, keep_values)


def _reseal(body: bytes) -> bytes:
    """A crafted file: altered content under a freshly computed checksum."""
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("keep_values", [True, False])
def test_round_trip_restores_root_items_and_mode(keep_values, tmp_path):
    t = _tree(keep_values=keep_values)
    t.put(b"\x01" * 32, b"pending at save time")  # save re-hashes first
    path = tmp_path / "state.snap"
    t.save(path)
    restored = StateTree.load(path)
    assert restored.root() == t.root()
    assert restored.keeps_values == keep_values
    assert list(restored.value_hash_items()) == list(t.value_hash_items())
    if keep_values:
        assert list(restored.items()) == list(t.items())
    assert not (tmp_path / "state.snap.tmp").exists()


def test_empty_tree_round_trips():
    assert StateTree.from_bytes(StateTree().to_bytes()).root() == EMPTY


def test_snapshot_is_deterministic():
    assert _tree(seed=4).to_bytes() == _tree(seed=4).to_bytes()


@pytest.mark.parametrize("keep_values", [True, False])
def test_every_truncation_is_refused_as_truncated(keep_values):
    data = _tree(30, keep_values).to_bytes()
    for cut in sorted({0, 1, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 40, len(data) // 2, len(data) - 33, len(data) - 1}):
        with pytest.raises(SnapshotTruncated, match="truncated|even an empty"):
            StateTree.from_bytes(data[:cut])


@pytest.mark.parametrize("keep_values", [True, False])
def test_any_flipped_byte_is_refused(keep_values):
    data = _tree(30, keep_values).to_bytes()
    rnd = random.Random(9)
    for position in [8, 20, 30, HEADER_BYTES + 5, len(data) - 40, len(data) - 1] + rnd.sample(range(len(data)), 20):
        altered = bytearray(data)
        altered[position] ^= 0x40
        with pytest.raises(SnapshotError):
            StateTree.from_bytes(bytes(altered))


def test_altered_record_is_a_checksum_mismatch():
    data = bytearray(_tree(30, keep_values=False).to_bytes())
    data[HEADER_BYTES + 40] ^= 1  # inside the first value hash
    with pytest.raises(SnapshotChecksumMismatch, match="altered"):
        StateTree.from_bytes(bytes(data))


def test_extended_file_is_refused():
    with pytest.raises(SnapshotChecksumMismatch, match="extended"):
        StateTree.from_bytes(_tree(10).to_bytes() + b"\x00")


def test_wrong_magic_and_version_are_format_errors():
    data = _tree(3).to_bytes()
    with pytest.raises(SnapshotFormatError, match="not a ddx"):
        StateTree.from_bytes(b"NOTATREE" + data[8:])
    with pytest.raises(SnapshotFormatError, match="unsupported snapshot version 2"):
        StateTree.from_bytes(data[:8] + struct.pack(">H", 2) + data[10:])


def test_resealed_file_with_other_items_fails_the_root_check():
    data = _tree(10, keep_values=False).to_bytes()
    body = bytearray(data[:-32])
    body[HEADER_BYTES + 40] ^= 1  # change a value hash, keep the header's root
    with pytest.raises(SnapshotRootMismatch):
        StateTree.from_bytes(_reseal(bytes(body)))


def test_resealed_file_with_unsorted_or_duplicate_keys_is_a_format_error():
    data = _tree(3, keep_values=False).to_bytes()
    body = data[:-32]
    records = [body[HEADER_BYTES + 64 * i : HEADER_BYTES + 64 * (i + 1)] for i in range(3)]
    for bad in ([records[1], records[0], records[2]], [records[0], records[0], records[2]]):
        with pytest.raises(SnapshotFormatError, match="ascending"):
            StateTree.from_bytes(_reseal(body[:HEADER_BYTES] + b"".join(bad)))


def test_resealed_file_with_unknown_flags_is_a_format_error():
    body = bytearray(_tree(3).to_bytes()[:-32])
    body[11] |= 0x80
    with pytest.raises(SnapshotFormatError, match="flags"):
        StateTree.from_bytes(_reseal(bytes(body)))


def test_non_bytes_input_is_a_format_error():
    with pytest.raises(SnapshotFormatError, match="is bytes"):
        StateTree.from_bytes("DDXTREE")  # type: ignore[arg-type]


def test_missing_file_is_a_snapshot_error(tmp_path):
    with pytest.raises(SnapshotError, match="cannot read"):
        StateTree.load(tmp_path / "absent.snap")


def test_header_starts_with_magic():
    assert _tree(1).to_bytes().startswith(MAGIC)
