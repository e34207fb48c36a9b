"""The state tree: a compact sparse Merkle tree over 32-byte keys (docs/protocol.md §3, docs/tree.md).

Layout (chosen for memory per item and for the cost of a batch re-hash in CPython):

- `_value_hashes`: key -> keccak256(value), every item;
- `_values`: key -> value, when the tree keeps values (the default);
- `_keys`: the keys in order (SortedKeys), to find the one leaf under a position that is not an internal node;
- `_internal`: node id -> hash, for exactly the subtrees holding two or more items.

A node id is the heap number `(1 << depth) | prefix` of the key prefix it covers: the root is 1, the children of
n are 2n and 2n + 1, so moving down is a shift and a bit, with no per-node objects. Leaves are not stored: the
leaf of a position that is not internal is the only key in its range, and its hash is recomputed (one keccak)
when needed.

Mutations only record the key as pending; `root()` sorts the pending keys and walks the union of their paths
once, re-hashing each touched node once (work proportional to dirty items x depth), building subtrees that
gained items and collapsing subtrees left with one item or none.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from os import PathLike

from ..protocol.hashing import EMPTY, LEAF_PREFIX, NODE_PREFIX, keccak256_bytes
from ..protocol.proof import InclusionProof, NonInclusionProof
from .errors import InvalidItem, ItemNotFound, ItemPresent, ValuesNotKept
from .sorted_keys import SortedKeys

KEY_BYTES = 32
KEY_BITS = 256
MAX_VALUE_BYTES = 1 << 16  # items are static ABI encodings of a few words; anything larger is a caller bug

_from_bytes = int.from_bytes


def _check_key(key: object) -> bytes:
    if isinstance(key, (bytearray, memoryview)):
        key = bytes(key)
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise InvalidItem(f"a key is exactly {KEY_BYTES} bytes, got {type(key).__name__} {key!r:.80}")
    return key


def _check_value(value: object) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise InvalidItem(f"a value is bytes, got {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidItem(f"a value is at most {MAX_VALUE_BYTES} bytes, got {len(value)}")
    return value


def _key_range(node_id: int, depth: int) -> tuple[bytes, bytes]:
    """The lowest and highest key under a node."""
    span = KEY_BITS - depth
    low = (node_id ^ (1 << depth)) << span
    return low.to_bytes(KEY_BYTES, "big"), (low | ((1 << span) - 1)).to_bytes(KEY_BYTES, "big")


class StateTree:
    """Authenticated key -> value map whose root commits to every item (docs/protocol.md §1-§4).

    Mutations are O(1) and lazy; `root()`, `prove()` and `prove_absent()` first re-hash what changed, in one batch.
    Bad input raises InvalidItem and changes nothing. Not thread-safe (the engine owns it).
    """

    __slots__ = ("_value_hashes", "_values", "_keys", "_internal", "_pending", "_root")

    def __init__(self, keep_values: bool = True) -> None:
        self._value_hashes: dict[bytes, bytes] = {}
        self._values: dict[bytes, bytes] | None = {} if keep_values else None
        self._keys = SortedKeys()
        self._internal: dict[int, bytes] = {}
        # key -> whether it was in the hashed tree when it first changed since the last re-hash
        self._pending: dict[bytes, bool] = {}
        self._root = EMPTY

    # ---------------------------------------------------------------- building

    @classmethod
    def from_items(
        cls, items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]], keep_values: bool = True
    ) -> "StateTree":
        """Build a tree from (key, value) pairs in one pass (a later duplicate key wins, as in dict())."""
        pairs = items.items() if isinstance(items, Mapping) else items
        values = {_check_key(k): _check_value(v) for k, v in pairs}
        hashes = {k: keccak256_bytes(v) for k, v in values.items()}
        return cls._from_hashes(hashes, values if keep_values else None)

    @classmethod
    def _from_hashes(cls, hashes: dict[bytes, bytes], values: dict[bytes, bytes] | None) -> "StateTree":
        """Build from validated key -> value hash (and, if kept, key -> value) maps; takes ownership of both."""
        tree = cls(keep_values=values is not None)
        ordered = sorted(hashes)
        tree._value_hashes = hashes
        if values is not None:
            tree._values = values
        tree._keys = SortedKeys(ordered)
        if ordered:
            ints = [_from_bytes(k, "big") for k in ordered]
            tree._root = _build(tree._internal, hashes, ordered, ints, 1, 0, 0, len(ordered))
        return tree

    # ---------------------------------------------------------------- reads

    def __len__(self) -> int:
        return len(self._value_hashes)

    def __contains__(self, key: object) -> bool:
        return key in self._value_hashes

    @property
    def keeps_values(self) -> bool:
        return self._values is not None

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        if self._values is None:
            raise ValuesNotKept("this tree keeps value hashes only (keep_values=False)")
        return self._values.get(key)

    def value_hash(self, key: bytes) -> bytes | None:
        """keccak256 of the value stored under `key`, or None."""
        return self._value_hashes.get(key)

    def keys(self) -> Iterator[bytes]:
        """Every key, ascending."""
        return iter(self._keys)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value), ascending by key."""
        if self._values is None:
            raise ValuesNotKept("this tree keeps value hashes only (keep_values=False)")
        values = self._values
        return ((k, values[k]) for k in self._keys)

    def value_hash_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value hash), ascending by key."""
        hashes = self._value_hashes
        return ((k, hashes[k]) for k in self._keys)

    # ---------------------------------------------------------------- writes

    def put(self, key: bytes, value: bytes) -> None:
        """Insert or replace an item; the leaf commits to keccak256(value)."""
        key = _check_key(key)
        value = _check_value(value)
        value_hash = keccak256_bytes(value)
        hashes = self._value_hashes
        if self._values is not None:
            self._values[key] = value
        old = hashes.get(key)
        if old == value_hash:
            return
        if key not in self._pending:
            self._pending[key] = old is not None
        if old is None:
            self._keys.add(key)
        hashes[key] = value_hash

    def delete(self, key: bytes) -> None:
        """Remove an item; ItemNotFound if it is absent."""
        key = _check_key(key)
        hashes = self._value_hashes
        if key not in hashes:
            raise ItemNotFound(f"no item with key 0x{key.hex()}")
        if key not in self._pending:
            self._pending[key] = True
        del hashes[key]
        if self._values is not None:
            del self._values[key]
        self._keys.remove(key)

    # ---------------------------------------------------------------- hashing

    def root(self) -> bytes:
        """The state root (EMPTY for an empty tree), after re-hashing every pending change in one batch."""
        if self._pending:
            self._rehash_pending()
        return self._root

    def _rehash_pending(self) -> None:
        pending = self._pending
        batch = sorted(pending)
        ints = [_from_bytes(k, "big") for k in batch]
        was_hashed = [pending[k] for k in batch]
        internal = self._internal
        hashes = self._value_hashes
        keys = self._keys
        keccak = keccak256_bytes

        def hash_of(node_id: int, depth: int) -> bytes:
            h = internal.get(node_id)
            if h is not None:
                return h
            low, high = _key_range(node_id, depth)
            k = keys.first_at_or_after(low)
            if k is None or k > high:
                return EMPTY
            return keccak(LEAF_PREFIX + k + hashes[k])

        def update(node_id: int, depth: int, lo: int, hi: int) -> bytes:
            """New hash of the subtree at node_id, whose pending keys are batch[lo:hi] (non-empty)."""
            if node_id in internal:
                shift = 255 - depth
                mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
                left_id = node_id << 1
                right_id = left_id | 1
                depth += 1
                left = update(left_id, depth, lo, mid) if lo < mid else hash_of(left_id, depth)
                right = update(right_id, depth, mid, hi) if mid < hi else hash_of(right_id, depth)
                # A subtree left with one item is that item's leaf; with none it is EMPTY.
                if left == EMPTY:
                    if right == EMPTY or right_id not in internal:
                        del internal[node_id]
                        return right
                elif right == EMPTY and left_id not in internal:
                    del internal[node_id]
                    return left
                h = keccak(NODE_PREFIX + left + right)
                internal[node_id] = h
                return h
            # Not internal: the subtree held at most one item before this batch.
            if hi - lo == 1 and was_hashed[lo]:
                # It held exactly this key, the only change under it: a new value or a removal.
                k = batch[lo]
                value_hash = hashes.get(k)
                return EMPTY if value_hash is None else keccak(LEAF_PREFIX + k + value_hash)
            low, high = _key_range(node_id, depth)
            content = keys.between(low, high)
            if not content:
                return EMPTY
            content_ints = [_from_bytes(k, "big") for k in content]
            return _build(internal, hashes, content, content_ints, node_id, depth, 0, len(content))

        self._root = update(1, 0, 0, len(batch))
        pending.clear()

    # ---------------------------------------------------------------- proofs

    def _path(self, key: bytes) -> tuple[list[bytes], int, int]:
        """Siblings top-down along key's path to the first position that is not internal, and that position."""
        self.root()
        internal = self._internal
        k = _from_bytes(key, "big")
        siblings: list[bytes] = []
        node_id, depth = 1, 0
        while node_id in internal:
            node_id = (node_id << 1) | ((k >> (255 - depth)) & 1)
            depth += 1
            siblings.append(self._settled_hash(node_id ^ 1, depth))
        return siblings, node_id, depth

    def _settled_hash(self, node_id: int, depth: int) -> bytes:
        h = self._internal.get(node_id)
        if h is not None:
            return h
        leaf = self._leaf_in(node_id, depth)
        if leaf is None:
            return EMPTY
        return keccak256_bytes(LEAF_PREFIX + leaf + self._value_hashes[leaf])

    def _leaf_in(self, node_id: int, depth: int) -> bytes | None:
        low, high = _key_range(node_id, depth)
        k = self._keys.first_at_or_after(low)
        return None if k is None or k > high else k

    def prove(self, key: bytes) -> InclusionProof:
        """Inclusion proof of (key, value hash) against root(); ItemNotFound if the key is absent."""
        key = _check_key(key)
        value_hash = self._value_hashes.get(key)
        if value_hash is None:
            raise ItemNotFound(f"no item with key 0x{key.hex()}; use prove_absent")
        siblings, _, _ = self._path(key)
        siblings.reverse()
        return InclusionProof(key=key, value_hash=value_hash, siblings=tuple(siblings))

    def prove_absent(self, key: bytes) -> NonInclusionProof:
        """Non-inclusion proof of `key` against root(); ItemPresent if the key is in the tree."""
        key = _check_key(key)
        if key in self._value_hashes:
            raise ItemPresent(f"0x{key.hex()} is in the tree; use prove")
        siblings, node_id, depth = self._path(key)
        siblings.reverse()
        other = self._leaf_in(node_id, depth)
        if other is None:
            return NonInclusionProof(key=key, siblings=tuple(siblings))
        return NonInclusionProof(
            key=key, siblings=tuple(siblings), other_key=other, other_value_hash=self._value_hashes[other]
        )

    # ---------------------------------------------------------------- snapshots

    def to_bytes(self) -> bytes:
        """The snapshot of this tree (docs/protocol.md §6): values if kept, else value hashes."""
        from .snapshot import encode_snapshot

        return encode_snapshot(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "StateTree":
        """Restore a tree from a snapshot; SnapshotError (naming the problem) if it is not intact."""
        from .snapshot import decode_snapshot

        return decode_snapshot(data)

    def save(self, path: str | PathLike) -> None:
        """Write the snapshot to `path` atomically (temporary file, fsync, rename)."""
        from .snapshot import write_snapshot_file

        write_snapshot_file(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | PathLike) -> "StateTree":
        """Read and restore a snapshot file."""
        from .snapshot import read_snapshot_file

        return cls.from_bytes(read_snapshot_file(path))


def _build(
    internal: dict[int, bytes],
    hashes: dict[bytes, bytes],
    keys: list[bytes],
    ints: list[int],
    node_id: int,
    depth: int,
    lo: int,
    hi: int,
) -> bytes:
    """Hash of the subtree at node_id holding exactly keys[lo:hi] (non-empty, ascending); records its internal nodes."""
    if hi - lo == 1:
        k = keys[lo]
        return keccak256_bytes(LEAF_PREFIX + k + hashes[k])
    shift = 255 - depth
    mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
    left_id = node_id << 1
    depth += 1
    left = _build(internal, hashes, keys, ints, left_id, depth, lo, mid) if lo < mid else EMPTY
    right = _build(internal, hashes, keys, ints, left_id | 1, depth, mid, hi) if mid < hi else EMPTY
    h = keccak256_bytes(NODE_PREFIX + left + right)
    internal[node_id] = h
    return h
