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


def spec_layout(values: dict[bytes, bytes]) -> tuple[dict[int, tuple[bytes, int]], dict[int, bytes]]:
    """What a tree holding `values` must store (ddx_offchain/tree/nodes.py), positions as (1 << depth) | prefix:
    ({top position: (hash at top, position of the branching node below)}, {leaf position: key})."""
    hashes = {k: keccak256(v) for k, v in values.items()}
    branch: dict[int, tuple[bytes, int]] = {}
    leaves: dict[int, bytes] = {}

    def walk(keys: list[bytes], position: int, depth: int, top: int, top_depth: int) -> None:
        if len(keys) == 1:
            leaves[position] = keys[0]
            return
        left = [k for k in keys if bit(k, depth) == 0]
        right = [k for k in keys if bit(k, depth) == 1]
        if left and right:  # a branching node: recorded under its chain's top
            branch[top] = (spec_root({k: hashes[k] for k in keys}, top_depth), position)
            walk(left, position << 1, depth + 1, position << 1, depth + 1)
            walk(right, (position << 1) | 1, depth + 1, (position << 1) | 1, depth + 1)
        else:  # a chain node: not stored
            child = position << 1 if left else (position << 1) | 1
            walk(left or right, child, depth + 1, top, top_depth)

    if values:
        walk(sorted(values), 1, 0, 1, 0)
    return branch, leaves


def stored_layout(tree) -> tuple[dict[int, tuple[bytes, int]], dict[int, bytes]]:
    """The same view of what a StateTree actually stores."""
    nodes = tree._nodes
    branch = {
        top: (v[:32], top if len(v) == 32 else int.from_bytes(v[32:], "big")) for top, v in nodes.branch.items()
    }
    return branch, dict(nodes.leaf_at)
