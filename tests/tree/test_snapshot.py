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
    decode_snapshot,
    encode_snapshot,
)
from ddx_offchain.tree.snapshot import HEADER_BYTES, MAGIC


def _tree(n: int = 200, keep_values: bool = True, seed: int = 1) -> StateTree:
    rnd = random.Random(seed)
    return StateTree.from_items({rnd.randbytes(32): rnd.randbytes(rnd.randint(0, 100)) for _ in range(n)}, keep_values)


def _reseal(body: bytes) -> bytes:
    """A crafted file: altered content under a freshly computed checksum."""
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("keep_values", [True, False])
def test_round_trip_restores_root_items_and_mode(keep_values):
    t = _tree(keep_values=keep_values)
    t.put(b"\x01" * 32, b"pending at save time")  # encoding re-hashes first
    restored = decode_snapshot(encode_snapshot(t))
    assert restored.root() == t.root()
    assert restored.keeps_values == keep_values
    assert list(restored.value_hash_items()) == list(t.value_hash_items())
    if keep_values:
        assert list(restored.items()) == list(t.items())


def test_empty_tree_round_trips():
    assert decode_snapshot(encode_snapshot(StateTree())).root() == EMPTY


def test_snapshot_is_deterministic():
    assert encode_snapshot(_tree(seed=4)) == encode_snapshot(_tree(seed=4))


@pytest.mark.parametrize("keep_values", [True, False])
def test_every_truncation_is_refused_as_truncated(keep_values):
    data = encode_snapshot(_tree(30, keep_values))
    for cut in sorted({0, 1, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 40, len(data) // 2, len(data) - 33, len(data) - 1}):
        with pytest.raises(SnapshotTruncated, match="truncated|even an empty"):
            decode_snapshot(data[:cut])


@pytest.mark.parametrize("keep_values", [True, False])
def test_any_flipped_byte_is_refused(keep_values):
    data = encode_snapshot(_tree(30, keep_values))
    rnd = random.Random(9)
    for position in [8, 20, 30, HEADER_BYTES + 5, len(data) - 40, len(data) - 1] + rnd.sample(range(len(data)), 20):
        altered = bytearray(data)
        altered[position] ^= 0x40
        with pytest.raises(SnapshotError):
            decode_snapshot(bytes(altered))


def test_altered_record_is_a_checksum_mismatch():
    data = bytearray(encode_snapshot(_tree(30, keep_values=False)))
    data[HEADER_BYTES + 40] ^= 1  # inside the first value hash
    with pytest.raises(SnapshotChecksumMismatch, match="altered"):
        decode_snapshot(bytes(data))


def test_extended_file_is_refused():
    with pytest.raises(SnapshotChecksumMismatch, match="extended"):
        decode_snapshot(encode_snapshot(_tree(10)) + b"\x00")


def test_wrong_magic_and_version_are_format_errors():
    data = encode_snapshot(_tree(3))
    with pytest.raises(SnapshotFormatError, match="not a ddx"):
        decode_snapshot(b"NOTATREE" + data[8:])
    with pytest.raises(SnapshotFormatError, match="unsupported snapshot version 2"):
        decode_snapshot(data[:8] + struct.pack(">H", 2) + data[10:])


def test_resealed_file_with_other_items_fails_the_root_check():
    data = encode_snapshot(_tree(10, keep_values=False))
    body = bytearray(data[:-32])
    body[HEADER_BYTES + 40] ^= 1  # change a value hash, keep the header's root
    with pytest.raises(SnapshotRootMismatch):
        decode_snapshot(_reseal(bytes(body)))


def test_resealed_file_with_unsorted_or_duplicate_keys_is_a_format_error():
    data = encode_snapshot(_tree(3, keep_values=False))
    body = data[:-32]
    records = [body[HEADER_BYTES + 64 * i : HEADER_BYTES + 64 * (i + 1)] for i in range(3)]
    for bad in ([records[1], records[0], records[2]], [records[0], records[0], records[2]]):
        with pytest.raises(SnapshotFormatError, match="ascending"):
            decode_snapshot(_reseal(body[:HEADER_BYTES] + b"".join(bad)))


def test_resealed_file_with_unknown_flags_is_a_format_error():
    body = bytearray(encode_snapshot(_tree(3))[:-32])
    body[11] |= 0x80
    with pytest.raises(SnapshotFormatError, match="flags"):
        decode_snapshot(_reseal(bytes(body)))


def test_non_bytes_input_is_a_format_error():
    with pytest.raises(SnapshotFormatError, match="is bytes"):
        decode_snapshot("DDXTREE")  # type: ignore[arg-type]


def test_header_starts_with_magic():
    assert encode_snapshot(_tree(1)).startswith(MAGIC)
