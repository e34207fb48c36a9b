"""The tree's hash written straight from docs/protocol.md §3, slow and obviously right: the oracle for tests."""

from ddx_offchain.protocol.hashing import EMPTY, keccak256, leaf_hash, node_hash


def bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def spec_root(value_hashes: dict[bytes, bytes], depth: int = 0) -> bytes:
    if not value_hashes:
        return EMPTY
    if len(value_hashes) == 1:
        ((key, value_hash),) = value_hashes.items()
        return leaf_hash(key, value_hash)
    left = {k: v for k, v in value_hashes.items() if bit(k, depth) == 0}
    right = {k: v for k, v in value_hashes.items() if bit(k, depth) == 1}
    return node_hash(spec_root(left, depth + 1), spec_root(right, depth + 1))


def spec_root_of_values(values: dict[bytes, bytes]) -> bytes:
    return spec_root({k: keccak256(v) for k, v in values.items()})


def spec_layout(values: dict[bytes, bytes]) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """(internal node id -> hash, leaf node id -> key) a tree holding `values` must store, ids as (1 << depth) | prefix."""
    internal: dict[int, bytes] = {}
    leaves: dict[int, bytes] = {}

    def walk(keys: list[bytes], node_id: int, depth: int) -> None:
        if len(keys) == 1:
            leaves[node_id] = keys[0]
        elif len(keys) > 1:
            internal[node_id] = spec_root({k: keccak256(values[k]) for k in keys}, depth)
            walk([k for k in keys if bit(k, depth) == 0], node_id << 1, depth + 1)
            walk([k for k in keys if bit(k, depth) == 1], (node_id << 1) | 1, depth + 1)

    walk(sorted(values), 1, 0)
    return internal, leaves
