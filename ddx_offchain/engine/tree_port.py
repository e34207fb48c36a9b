"""The one place the engine touches the state tree package (ddx_offchain/tree)."""

from ..tree import StateTree, decode_snapshot, encode_snapshot


def new_tree() -> StateTree:
    return StateTree()


def load_tree(data: bytes) -> StateTree:
    return decode_snapshot(data)


def save_tree(tree: StateTree) -> bytes:
    return encode_snapshot(tree)


def tree_from_items(items) -> StateTree:
    return StateTree.from_items(items)


def prove(tree: StateTree, key: bytes):
    """An inclusion proof if the key is present, else a non-inclusion proof."""
    if key in tree:
        return tree.prove(key)
    return tree.prove_absent(key)
