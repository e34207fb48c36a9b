"""The state tree: a compact sparse Merkle tree over 32-byte keys (docs/protocol.md §3, docs/tree.md).

The tree holds its items in one map, `_items`: key -> value when it keeps values (the default; a value hash is
then one keccak away), key -> keccak256(value) when it does not. Its stored nodes are in `_nodes` (nodes.py:
leaf positions and branching nodes only). Mutations only record the key as pending; `root()` re-hashes the
union of the pending keys' paths once (work proportional to dirty items x depth), building subtrees that gained
items and collapsing those left with one item or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ..protocol.hashing import EMPTY, keccak256_bytes
from ..protocol.proof import InclusionProof, NonInclusionProof
from .errors import InvalidItem, ItemNotFound, ItemPresent, ValuesNotKept
from .kernels import Kernels
from .nodes import Nodes

KEY_BYTES = 32
MAX_VALUE_BYTES = 1 << 16  # items are static ABI encodings of a few words; anything larger is a caller bug


def _check_key(key: object) -> bytes:
    if isinstance(key, (bytes, bytearray, memoryview)) and type(key) is not bytes:
        key = bytes(key)  # exactly bytes: a subclass (HexBytes) would leak its own hex() into proofs
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise InvalidItem(f"a key is exactly {KEY_BYTES} bytes, got {type(key).__name__} {key!r:.80}")
    return key


def _check_value(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)) and type(value) is not bytes:
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

    __slots__ = ("_items", "_keep_values", "_kernels", "_nodes", "_pending", "_structural", "_root")

    def __init__(self, keep_values: bool = True, kernels: Kernels | None = None) -> None:
        """`kernels`: kernels.PURE or kernels.COMPILED to choose the implementation of the hashes and node maps
        (the same roots and proofs either way); None is kernels.DEFAULT."""
        self._items: dict[bytes, bytes] = {}  # key -> value, or key -> value hash if not keep_values
        self._keep_values = keep_values
        self._kernels = kernels
        self._nodes = self._new_nodes(self._items)
        self._pending: set[bytes] = set()  # keys changed since the last re-hash
        self._structural: set[bytes] = set()  # those of them inserted or deleted (the rest: new values)
        self._root = EMPTY

    # ---------------------------------------------------------------- building

    @classmethod
    def from_items(
        cls,
        items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        keep_values: bool = True,
        kernels: Kernels | None = None,
    ) -> "StateTree":
        """Build a tree from (key, value) pairs in one pass (a later duplicate key wins, as in dict())."""
        pairs = items.items() if isinstance(items, Mapping) else items
        values = {_check_key(k): _check_value(v) for k, v in pairs}
        if not keep_values:
            values = {k: keccak256_bytes(v) for k, v in values.items()}
        return cls._from_store(values, keep_values, kernels)

    @classmethod
    def _from_store(cls, store: dict[bytes, bytes], keep_values: bool, kernels: Kernels | None = None) -> "StateTree":
        """Build from a validated item map (values, or value hashes if not keep_values); takes ownership of it."""
        tree = cls(keep_values, kernels)
        tree._items = store
        tree._nodes = tree._new_nodes(store)
        tree._root = tree._nodes.build_all(sorted(store))
        return tree

    def _new_nodes(self, items: dict[bytes, bytes]) -> Nodes:
        if self._kernels is None:
            return Nodes(items, self._keep_values)
        return Nodes(items, self._keep_values, self._kernels)

    @property
    def kernels(self) -> Kernels:
        """The implementation of the hashes and node maps this tree uses (kernels.py)."""
        return self._nodes.kernels

    # ---------------------------------------------------------------- reads

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def keeps_values(self) -> bool:
        return self._keep_values

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        if not self._keep_values:
            raise ValuesNotKept("this tree keeps value hashes only (keep_values=False)")
        return self._items.get(key)

    def value_hash(self, key: bytes) -> bytes | None:
        """keccak256 of the value stored under `key`, or None."""
        stored = self._items.get(key)
        if stored is None or not self._keep_values:
            return stored
        return keccak256_bytes(stored)

    def keys(self) -> Iterator[bytes]:
        """Every key, ascending (sorts: O(n log n))."""
        return iter(sorted(self._items))

    def copy_items(self) -> dict[bytes, bytes]:
        """A copy of every (key, value), unordered: one C-level dict copy, for a snapshot captured now and encoded
        later (elsewhere)."""
        if not self._keep_values:
            raise ValuesNotKept("this tree keeps value hashes only (keep_values=False)")
        return dict(self._items)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value), ascending by key."""
        if not self._keep_values:
            raise ValuesNotKept("this tree keeps value hashes only (keep_values=False)")
        store = self._items
        return ((k, store[k]) for k in sorted(store))

    def value_hash_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value hash), ascending by key."""
        store = self._items
        if self._keep_values:
            return ((k, keccak256_bytes(store[k])) for k in sorted(store))
        return ((k, store[k]) for k in sorted(store))

    # ---------------------------------------------------------------- writes

    def put(self, key: bytes, value: bytes) -> None:
        """Insert or replace an item; the leaf commits to keccak256(value)."""
        if type(key) is not bytes or len(key) != KEY_BYTES:  # the checks, skipped in the usual case
            key = _check_key(key)
        if type(value) is not bytes or len(value) > MAX_VALUE_BYTES:
            value = _check_value(value)
        stored = value if self._keep_values else keccak256_bytes(value)
        old = self._items.get(key)
        if old == stored:
            return  # same value hash: the tree is unchanged
        if old is None:
            self._structural.add(key)
        self._pending.add(key)
        self._items[key] = stored

    def delete(self, key: bytes) -> None:
        """Remove an item; ItemNotFound if it is absent."""
        key = _check_key(key)
        if key not in self._items:
            raise ItemNotFound(f"no item with key 0x{key.hex()}")
        self._pending.add(key)
        self._structural.add(key)
        del self._items[key]

    # ---------------------------------------------------------------- hashing

    def root(self) -> bytes:
        """The state root (EMPTY for an empty tree), after re-hashing every pending change in one batch."""
        if self._pending:
            self._rehash_pending()
        return self._root

    def _rehash_pending(self) -> None:
        self._root = self._nodes.rehash(self._pending, self._structural)
        self._pending.clear()
        self._structural.clear()

    # ---------------------------------------------------------------- proofs

    def prove(self, key: bytes) -> InclusionProof:
        """Inclusion proof of (key, value hash) against root(); ItemNotFound if the key is absent."""
        key = _check_key(key)
        value_hash = self.value_hash(key)
        if value_hash is None:
            raise ItemNotFound(f"no item with key 0x{key.hex()}; use prove_absent")
        self.root()
        siblings, _ = self._nodes.path(key)
        siblings.reverse()
        return InclusionProof(key=key, value_hash=value_hash, siblings=tuple(siblings))

    def prove_absent(self, key: bytes) -> NonInclusionProof:
        """Non-inclusion proof of `key` against root(); ItemPresent if the key is in the tree."""
        key = _check_key(key)
        if key in self._items:
            raise ItemPresent(f"0x{key.hex()} is in the tree; use prove")
        self.root()
        siblings, other = self._nodes.path(key)
        siblings.reverse()
        if other is None:
            return NonInclusionProof(key=key, siblings=tuple(siblings))
        return NonInclusionProof(
            key=key, siblings=tuple(siblings), other_key=other, other_value_hash=self.value_hash(other)
        )
