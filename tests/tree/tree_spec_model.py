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
