"""State-tree snapshots: a versioned, checksummed byte format (docs/protocol.md §8). No pickle.

    header   magic "DDXTREE\\0" | version u16 | flags u16 | reserved u32 (0) | count u64 | root 32 bytes
    records  count records, strictly ascending by key:
               flags bit 0 set   (values):       key 32 | length u32 | value (length bytes)
               flags bit 0 clear (hashes only):  key 32 | value_hash 32
    trailer  sha256(header || records)

Integers are big-endian. Restoring re-hashes every item and checks the result against the header's root, so a
file that passes its checksum but was built from different items is still refused.
"""

from __future__ import annotations

import hashlib
import struct

from .errors import (
    SnapshotChecksumMismatch,
    SnapshotFormatError,
    SnapshotRootMismatch,
    SnapshotTruncated,
)
from .state_tree import MAX_VALUE_BYTES, StateTree

MAGIC = b"DDXTREE\x00"
VERSION = 1
FLAG_VALUES = 1
KNOWN_FLAGS = FLAG_VALUES
_HEADER = struct.Struct(">8sHHIQ32s")
HEADER_BYTES = _HEADER.size  # 56
CHECKSUM_BYTES = 32
KEY_BYTES = 32
HASH_RECORD_BYTES = 64
_LENGTH = struct.Struct(">I")


def encode_snapshot(tree: StateTree) -> bytes:
    root = tree.root()
    if tree.keeps_values:
        flags = FLAG_VALUES
        pack_length = _LENGTH.pack
        parts = [b""]
        for key, value in tree.items():
            parts.append(key)
            parts.append(pack_length(len(value)))
            parts.append(value)
    else:
        flags = 0
        parts = [b""]
        for key, value_hash in tree.value_hash_items():
            parts.append(key)
            parts.append(value_hash)
    parts[0] = _HEADER.pack(MAGIC, VERSION, flags, 0, len(tree), root)
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode_snapshot(data: bytes) -> StateTree:

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SnapshotFormatError(f"a snapshot is bytes, got {type(data).__name__}")
    data = bytes(data)
    minimum = HEADER_BYTES + CHECKSUM_BYTES
    if len(data) < minimum:
        raise SnapshotTruncated(f"snapshot is {len(data)} bytes; even an empty one is {minimum}")
    magic, version, flags, reserved, count, root = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotFormatError(f"not a ddx state-tree snapshot (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise SnapshotFormatError(f"unsupported snapshot version {version}; this build reads version {VERSION}")

    body_end = len(data) - CHECKSUM_BYTES
    if hashlib.sha256(memoryview(data)[:body_end]).digest() != data[body_end:]:
        expected = _announced_length(data, flags, count)
        if expected is None or expected > len(data):
            needed = "more" if expected is None else f"{expected}"
            raise SnapshotTruncated(f"snapshot is truncated: {len(data)} bytes, its header announces {needed}")
        if expected < len(data):
            raise SnapshotChecksumMismatch(
                f"snapshot has {len(data) - expected} bytes beyond the end its header announces: it was extended"
            )
        raise SnapshotChecksumMismatch("snapshot checksum mismatch: the file was altered after it was written")

    # From here the bytes are exactly what a writer produced; what remains are format rules.
    if flags & ~KNOWN_FLAGS or reserved != 0:
        raise SnapshotFormatError(f"unknown snapshot flags 0x{flags:04x} / reserved 0x{reserved:08x}")
    store: dict[bytes, bytes] = {}  # key -> value, or key -> value hash
    offset = HEADER_BYTES
    previous = b""
    if flags & FLAG_VALUES:
        unpack_length = _LENGTH.unpack_from
        for _ in range(count):
            if offset + KEY_BYTES + 4 > body_end:
                raise SnapshotFormatError(f"records end early: {count} announced")
            key = data[offset : offset + KEY_BYTES]
            (length,) = unpack_length(data, offset + KEY_BYTES)
            offset += KEY_BYTES + 4
            if length > MAX_VALUE_BYTES or offset + length > body_end:
                raise SnapshotFormatError(f"record for 0x{key.hex()} has a bad value length {length}")
            if key <= previous:
                raise SnapshotFormatError(f"keys are not strictly ascending at 0x{key.hex()}")
            value = data[offset : offset + length]
            offset += length
            store[key] = value
            previous = key
    else:
        if body_end - offset != count * HASH_RECORD_BYTES:
            raise SnapshotFormatError(f"{body_end - offset} record bytes for {count} records")
        for start in range(offset, body_end, HASH_RECORD_BYTES):
            key = data[start : start + KEY_BYTES]
            if key <= previous:
                raise SnapshotFormatError(f"keys are not strictly ascending at 0x{key.hex()}")
            store[key] = data[start + KEY_BYTES : start + HASH_RECORD_BYTES]
            previous = key
        offset = body_end
    if offset != body_end:
        raise SnapshotFormatError(f"{body_end - offset} unexpected bytes after the last record")

    tree = StateTree._from_store(store, keep_values=bool(flags & FLAG_VALUES))
    if tree.root() != root:
        raise SnapshotRootMismatch(
            f"items hash to root 0x{tree.root().hex()}, the snapshot header records 0x{root.hex()}"
        )
    return tree


def _announced_length(data: bytes, flags: int, count: int) -> int | None:
    """Total length the header and record lengths announce, or None if the records run past the data."""
    if not flags & FLAG_VALUES:
        return HEADER_BYTES + count * HASH_RECORD_BYTES + CHECKSUM_BYTES
    offset = HEADER_BYTES
    unpack_length = _LENGTH.unpack_from
    for _ in range(count):
        if offset + KEY_BYTES + 4 > len(data):
            return None
        offset += KEY_BYTES + 4 + unpack_length(data, offset + KEY_BYTES)[0]
    return offset + CHECKSUM_BYTES
