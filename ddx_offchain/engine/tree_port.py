"""The one place the engine touches the state tree package (ddx_offchain/tree)."""

from ..tree import StateTree


def new_tree() -> StateTree:
    return StateTree()


def load_tree(data: bytes) -> StateTree:
    return StateTree.from_bytes(data)


def tree_from_items(items) -> StateTree:
    return StateTree.from_items(items)


def prove(tree: StateTree, key: bytes):
    """An inclusion proof if the key is present, else a non-inclusion proof."""
    if key in tree:
        return tree.prove(key)
    return tree.prove_absent(key)
