"""Authenticated state tree (compact sparse Merkle tree), its proofs and snapshots. Pure: no I/O (a shell writes
snapshot bytes to disk).

    from ddx_offchain.tree import StateTree
    t = StateTree(); t.put(key, value); t.root(); t.prove(key); t.prove_absent(other)
    data = encode_snapshot(t); decode_snapshot(data).root() == t.root()
"""

from .errors import (
    InvalidItem,
    ItemNotFound,
    ItemPresent,
    SnapshotChecksumMismatch,
    SnapshotError,
    SnapshotFormatError,
    SnapshotRootMismatch,
    SnapshotTruncated,
    TreeError,
    ValuesNotKept,
)
from .snapshot import decode_snapshot, encode_snapshot
from .state_tree import MAX_VALUE_BYTES, StateTree

__all__ = [
    "MAX_VALUE_BYTES",
    "InvalidItem",
    "ItemNotFound",
    "ItemPresent",
    "SnapshotChecksumMismatch",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotRootMismatch",
    "SnapshotTruncated",
    "StateTree",
    "TreeError",
    "ValuesNotKept",
    "decode_snapshot",
    "encode_snapshot",
]
