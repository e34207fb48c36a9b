"""Authenticated state tree (compact sparse Merkle tree), its proofs and snapshots. Pure: no I/O except the
explicit snapshot `save`/`load`.

    from ddx_offchain.tree import StateTree
    t = StateTree(); t.put(key, value); t.root(); t.prove(key); t.prove_absent(other); t.save(path)
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
]
