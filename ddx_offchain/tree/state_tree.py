"""The state tree: a compact sparse Merkle tree over 32-byte keys (docs/protocol.md §3, docs/tree.md).

Layout (chosen for memory per item and for the cost of a batch re-hash in CPython):

- `_value_hashes`: key -> keccak256(value), every item;
- `_values`: key -> value, when the tree keeps values (the default);
- `_internal`: node id -> hash, for exactly the subtrees holding two or more items;
- `_leaf_at`: node id -> key, where each leaf hangs (the key object is shared with `_value_hashes`).

A node id is the heap number `(1 << depth) | prefix` of the key prefix it covers: the root is 1, the children of
n are 2n and 2n + 1, so moving down is a shift and a bit, with no per-node objects. Leaf hashes are not stored:
one keccak recomputes a leaf when it is a sibling on a re-hashed path or in a proof.

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

KEY_BYTES = 32
KEY_BITS = 256
KEY_SPACE = 1 << KEY_BITS
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


class StateTree:
    """Authenticated key -> value map whose root commits to every item (docs/protocol.md §1-§4).

    Mutations are O(1) and lazy; `root()`, `prove()` and `prove_absent()` first re-hash what changed, in one batch.
    Bad input raises InvalidItem and changes nothing. Not thread-safe (the engine owns it).
    """

    __slots__ = ("_value_hashes", "_values", "_internal", "_leaf_at", "_pending", "_root")

    def __init__(self, keep_values: bool = True) -> None:
        self._value_hashes: dict[bytes, bytes] = {}
        self._values: dict[bytes, bytes] | None = {} if keep_values else None
        self._internal: dict[int, bytes] = {}
        self._leaf_at: dict[int, bytes] = {}
        self._pending: set[bytes] = set()  # keys changed since the last re-hash
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
        if ordered:
            ints = [_from_bytes(k, "big") for k in ordered]
            tree._root = _build(tree._internal, tree._leaf_at, hashes, ordered, ints, 1, 0, 0, len(ordered))
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
        """Every key, ascending (sorts: O(n log n))."""
        return iter(sorted(self._value_hashes))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value), ascending by key."""
        if self._values is None:
            raise ValuesNotKept("this tree keeps value hashes only (keep_values=False)")
        values = self._values
        return ((k, values[k]) for k in sorted(values))

    def value_hash_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value hash), ascending by key."""
        hashes = self._value_hashes
        return ((k, hashes[k]) for k in sorted(hashes))

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
        self._pending.add(key)
        hashes[key] = value_hash

    def delete(self, key: bytes) -> None:
        """Remove an item; ItemNotFound if it is absent."""
        key = _check_key(key)
        hashes = self._value_hashes
        if key not in hashes:
            raise ItemNotFound(f"no item with key 0x{key.hex()}")
        self._pending.add(key)
        del hashes[key]
        if self._values is not None:
            del self._values[key]

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
        internal = self._internal
        get_internal = internal.get
        leaf_at = self._leaf_at
        get_leaf = leaf_at.get
        hashes = self._value_hashes
        keccak = keccak256_bytes

        def settled(node_id: int) -> bytes:
            """Hash of a subtree with no pending key."""
            h = get_internal(node_id)
            if h is not None:
                return h
            k = get_leaf(node_id)
            return EMPTY if k is None else keccak(LEAF_PREFIX + k + hashes[k])

        def rebuilt(node_id: int, depth: int, lo: int, hi: int) -> bytes:
            """Hash of a subtree that was not internal (one leaf or none), whose pending keys are batch[lo:hi]."""
            old = get_leaf(node_id)
            if hi - lo == 1 and old == batch[lo]:
                # It held exactly this key, the only change under it: a new value or a removal.
                value_hash = hashes.get(old)
                if value_hash is None:
                    del leaf_at[node_id]
                    return EMPTY
                return keccak(LEAF_PREFIX + old + value_hash)
            content = [k for k in batch[lo:hi] if k in hashes]
            if old is not None:
                del leaf_at[node_id]
                if old not in pending:  # untouched by this batch: it stays, at a new depth if split
                    content.append(old)
                    content.sort()
            if not content:
                return EMPTY
            content_ints = [_from_bytes(k, "big") for k in content]
            return _build(internal, leaf_at, hashes, content, content_ints, node_id, depth, 0, len(content))

        def join(node_id: int, left_id: int, left: bytes, right: bytes) -> bytes:
            """Hash of internal node_id from its children's new hashes; collapses it if it now holds <= 1 item."""
            if left == EMPTY:
                if right == EMPTY:
                    del internal[node_id]
                    return EMPTY
                if (left_id | 1) not in internal:  # one leaf left: it moves up to this position
                    del internal[node_id]
                    leaf_at[node_id] = leaf_at.pop(left_id | 1)
                    return right
            elif right == EMPTY and left_id not in internal:
                del internal[node_id]
                leaf_at[node_id] = leaf_at.pop(left_id)
                return left
            h = keccak(NODE_PREFIX + left + right)
            internal[node_id] = h
            return h

        def single(node_id: int, depth: int, i: int) -> bytes:
            """update() for a subtree with one pending key, batch[i]: walk its path down, then hash back up."""
            leaf_id = ints[i] | KEY_SPACE  # the id the key would have at depth 256; its prefixes are the path
            sibling_hashes: list[bytes] = []  # of the child off the path, for each internal node on the path
            while node_id in internal:
                depth += 1
                node_id = leaf_id >> (KEY_BITS - depth)
                h = get_internal(node_id ^ 1)
                if h is None:
                    k = get_leaf(node_id ^ 1)
                    h = EMPTY if k is None else keccak(LEAF_PREFIX + k + hashes[k])
                sibling_hashes.append(h)
            h = rebuilt(node_id, depth, i, i + 1)
            for sibling_hash in reversed(sibling_hashes):
                parent = node_id >> 1
                if node_id & 1:
                    left, right = sibling_hash, h
                else:
                    left, right = h, sibling_hash
                if left == EMPTY or right == EMPTY:  # only there can the node collapse
                    h = join(parent, parent << 1, left, right)
                else:
                    h = keccak(NODE_PREFIX + left + right)
                    internal[parent] = h
                node_id = parent
            return h

        def update(node_id: int, depth: int, lo: int, hi: int) -> bytes:
            """New hash of the subtree at node_id, whose pending keys are batch[lo:hi] (non-empty)."""
            if hi - lo == 1:
                return single(node_id, depth, lo)
            if node_id not in internal:
                return rebuilt(node_id, depth, lo, hi)
            shift = 255 - depth
            mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
            left_id = node_id << 1
            right_id = left_id | 1
            depth += 1
            left = update(left_id, depth, lo, mid) if lo < mid else settled(left_id)
            right = update(right_id, depth, mid, hi) if mid < hi else settled(right_id)
            return join(node_id, left_id, left, right)

        self._root = update(1, 0, 0, len(batch))
        pending.clear()

    # ---------------------------------------------------------------- proofs

    def _path(self, key: bytes) -> tuple[list[bytes], int]:
        """Siblings top-down along key's path to the first position that is not internal, and that position."""
        self.root()
        internal = self._internal
        k = _from_bytes(key, "big")
        siblings: list[bytes] = []
        node_id, depth = 1, 0
        while node_id in internal:
            node_id = (node_id << 1) | ((k >> (255 - depth)) & 1)
            depth += 1
            siblings.append(self._settled_hash(node_id ^ 1))
        return siblings, node_id

    def _settled_hash(self, node_id: int) -> bytes:
        h = self._internal.get(node_id)
        if h is not None:
            return h
        leaf = self._leaf_at.get(node_id)
        if leaf is None:
            return EMPTY
        return keccak256_bytes(LEAF_PREFIX + leaf + self._value_hashes[leaf])

    def prove(self, key: bytes) -> InclusionProof:
        """Inclusion proof of (key, value hash) against root(); ItemNotFound if the key is absent."""
        key = _check_key(key)
        value_hash = self._value_hashes.get(key)
        if value_hash is None:
            raise ItemNotFound(f"no item with key 0x{key.hex()}; use prove_absent")
        siblings, _ = self._path(key)
        siblings.reverse()
        return InclusionProof(key=key, value_hash=value_hash, siblings=tuple(siblings))

    def prove_absent(self, key: bytes) -> NonInclusionProof:
        """Non-inclusion proof of `key` against root(); ItemPresent if the key is in the tree."""
        key = _check_key(key)
        if key in self._value_hashes:
            raise ItemPresent(f"0x{key.hex()} is in the tree; use prove")
        siblings, node_id = self._path(key)
        siblings.reverse()
        other = self._leaf_at.get(node_id)
        if other is None:
            return NonInclusionProof(key=key, siblings=tuple(siblings))
        return NonInclusionProof(
            key=key, siblings=tuple(siblings), other_key=other, other_value_hash=self._value_hashes[other]
        )

    # ---------------------------------------------------------------- snapshots

    def to_bytes(self) -> bytes:
        """The snapshot of this tree (docs/protocol.md §8): values if kept, else value hashes."""
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
    leaf_at: dict[int, bytes],
    hashes: dict[bytes, bytes],
    keys: list[bytes],
    ints: list[int],
    node_id: int,
    depth: int,
    lo: int,
    hi: int,
) -> bytes:
    """Hash of the subtree at node_id holding exactly keys[lo:hi] (non-empty, ascending); records its nodes."""
    if hi - lo == 1:
        k = keys[lo]
        leaf_at[node_id] = k
        return keccak256_bytes(LEAF_PREFIX + k + hashes[k])
    shift = 255 - depth
    mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
    left_id = node_id << 1
    depth += 1
    left = _build(internal, leaf_at, hashes, keys, ints, left_id, depth, lo, mid) if lo < mid else EMPTY
    right = _build(internal, leaf_at, hashes, keys, ints, left_id | 1, depth, mid, hi) if mid < hi else EMPTY
    h = keccak256_bytes(NODE_PREFIX + left + right)
    internal[node_id] = h
    return h
