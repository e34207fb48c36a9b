"""Where the tree's nodes live, and the batch re-hash (docs/tree.md, "Layout").

Positions are heap numbers: the position of the key prefix p of d bits is `(1 << d) | p`, so the root is 1, the
children of n are 2n and 2n + 1, a position's depth is `bit_length() - 1`, and the position of a key at depth d is
`(key | 1 << 256) >> (256 - d)`. Directions and depths are integer shifts, with no per-node objects.

Only two kinds of position are stored (docs/protocol.md §3 hashes more; the rest is implied):

- `leaf_at[position] = key`: where each leaf hangs (the key object is shared with the item map);
- `branch[top] = top_hash [+ id of B]`: for every *branching* node B (two non-empty children), keyed by the
  position `top` just below B's nearest branching ancestor (or the root position). Between `top` and B every
  node has one empty child (a "chain"); `top_hash` is the hash at `top`, B's own hash folded up the chain. When
  the chain is empty (`top == B`) the value is the 32-byte hash alone, otherwise B's position follows it.

Chain nodes are hashed (the format requires it) but never stored: they would be 44% more dict entries for
random keys, and their siblings are all EMPTY.

A subtree's state is described by an `info`: `None` (empty), `bytes` (the key of its one leaf) or `int` (the
position of its topmost branching node).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable

from ..protocol.hashing import EMPTY
from .kernels import DEFAULT, Kernels

KEY_BITS = 256
KEY_SPACE = 1 << KEY_BITS
_FULL_BITS = KEY_BITS + 1  # bit length of a position at depth 256
_from_bytes = int.from_bytes


def fold_up(node_hash: Callable[[bytes, bytes], bytes], h: bytes, position: int, top: int) -> bytes:
    """The hash at `top` of a chain whose only non-empty subtree below is `h` at `position`."""
    while position != top:
        h = node_hash(EMPTY, h) if position & 1 else node_hash(h, EMPTY)
        position >>= 1
    return h


class Nodes:
    """The stored nodes of one tree over its item map (key -> value, or key -> value hash)."""

    __slots__ = ("leaf_at", "branch", "items", "leaf_hash", "node_hash", "hash_values", "kernels")

    def __init__(self, items: dict[bytes, bytes], items_are_values: bool, kernels: Kernels = DEFAULT) -> None:
        self.items = items
        self.hash_values = items_are_values  # a leaf's value hash is keccak(items[key]), else items[key] itself
        # (key, items[key]) -> the leaf's hash
        self.kernels = kernels  # the hashes and maps below: compiled or pure Python (kernels.py)
        self.leaf_hash = kernels.value_leaf_hash if items_are_values else kernels.leaf_hash
        self.node_hash = kernels.node_hash
        self.leaf_at: Any = kernels.PosMap()  # position -> key (a dict, or the compiled PosMap)
        self.branch: Any = kernels.PosMap()  # top position -> hash [+ position of B]

    # ------------------------------------------------------------ storage of one position

    def place(self, position: int, h: bytes, info: bytes | int | None) -> None:
        """Record the subtree (hash h, info) at a position just below a branching node (or at the root)."""
        if info is None:
            return
        if type(info) is bytes:
            self.leaf_at[position] = info
        elif info == position:
            self.branch[position] = h
        else:
            self.branch[position] = h + info.to_bytes((info.bit_length() + 7) >> 3, "big")  # type: ignore[union-attr]

    def take(self, position: int) -> bytes | int | None:
        """Remove and describe what is stored at a position (its parent is about to rewrite it)."""
        v = self.branch.pop(position, None)
        if v is not None:
            return position if len(v) == 32 else _from_bytes(v[32:], "big")
        return self.leaf_at.pop(position, None)

    def settled(self, position: int) -> bytes:
        """Hash of the subtree stored at a position (EMPTY if nothing is)."""
        v = self.branch.get(position)
        if v is not None:
            return v if len(v) == 32 else v[:32]
        k = self.leaf_at.get(position)
        if k is None:
            return EMPTY
        return self.leaf_hash(k, self.items[k])

    def own_hash(self, b: int) -> bytes:
        """Hash at a branching node's own position (below its chain)."""
        return self.node_hash(self.settled(b << 1), self.settled((b << 1) | 1))

    # ------------------------------------------------------------ building

    def build(self, position: int, keys: list[bytes], ints: list[int], lo: int, hi: int) -> tuple[bytes, bytes | int]:
        """(hash, info) of a new subtree at `position` holding exactly keys[lo:hi] (non-empty, ascending, with
        their 256-bit ints); stores every position below it. The caller places `position` itself."""
        if hi - lo == 1:
            k = keys[lo]
            return self.leaf_hash(k, self.items[k]), k
        first = ints[lo]
        # The branching node: the longest prefix shared by the first and last key (so by all of them).
        depth = KEY_BITS - (first ^ ints[hi - 1]).bit_length()
        b = (first | KEY_SPACE) >> (KEY_BITS - depth)
        shift = 255 - depth
        mid = bisect_left(ints, ((first >> shift) | 1) << shift, lo, hi)
        left, left_info = self.build(b << 1, keys, ints, lo, mid)
        self.place(b << 1, left, left_info)
        right, right_info = self.build((b << 1) | 1, keys, ints, mid, hi)
        self.place((b << 1) | 1, right, right_info)
        return fold_up(self.node_hash, self.node_hash(left, right), b, position), b

    def build_all(self, ordered: list[bytes]) -> bytes:
        """Store a whole tree of the given ascending keys; returns the root."""
        self.leaf_at.clear()
        self.branch.clear()
        if not ordered:
            return EMPTY
        ints = [_from_bytes(k, "big") for k in ordered]
        h, info = self.build(1, ordered, ints, 0, len(ordered))
        self.place(1, h, info)
        return h

    # ------------------------------------------------------------ batch re-hash

    def rehash(self, pending: set[bytes], structural: set[bytes] | None = None) -> bytes:
        """Re-hash the union of the pending keys' paths once, splitting chains where keys arrive and collapsing
        subtrees left with one item or none; returns the new root. `structural`: the pending keys that were
        inserted or deleted (None: any may have been); the others are value updates of present items."""
        batch = sorted(pending)
        multi_path = self.kernels.multi_path  # the compiled general() for ranges of value updates only
        if multi_path is not None and structural is not None and not structural and len(batch) > 1:
            # Only value updates, so the root is a branching node and the compiled walk takes the whole batch
            # (what update(1, ...) would hand it first) or hands it back untouched; the keys' integers and the
            # prefix counts below (1-2 ms of a 10,000-key batch, measured) are made only if it hands it back.
            entry = self.branch[1]  # two or more items: the root's branching node is stored
            b = 1 if len(entry) == 32 else _from_bytes(entry[32:], "big")
            done = multi_path(self.branch, self.leaf_at, self.items, self.hash_values, batch, 0, len(batch), 1, b)
            if done is not None:
                self.place(1, done[0], done[1])
                return done[0]
        ints = [_from_bytes(k, "big") | KEY_SPACE for k in batch]  # each key's position at depth 256
        items = self.items
        hash_leaf = self.leaf_hash
        node_hash = self.node_hash
        hash_values = self.hash_values
        single_path = self.kernels.single_path  # the compiled loop below, for its usual case (kernels.py)
        # changes_before[i]: inserts and deletes among batch[:i], so batch[lo:hi] holds none iff the two ends agree
        changes_before: list[int] = []
        if multi_path is not None:
            if structural is None:
                multi_path = None
            else:
                count = 0
                changes_before.append(0)
                for key in batch:
                    if key in structural:
                        count += 1
                    changes_before.append(count)
        branch = self.branch
        leaf_at = self.leaf_at
        get_branch = branch.get
        get_leaf = leaf_at.get
        place = self.place
        take = self.take
        settled = self.settled
        pop_branch = branch.pop
        pop_leaf = leaf_at.pop

        def rebuilt(position: int, lo: int, hi: int, old: bytes | None) -> tuple[bytes, bytes | int | None]:
            """A subtree that held one leaf (old) or none, whose pending keys are batch[lo:hi]."""
            if hi - lo == 1 and old == batch[lo]:  # the same item, a new value or removed
                if old not in items:
                    return EMPTY, None
                return hash_leaf(old, items[old]), old
            content = [k for k in batch[lo:hi] if k in items]
            if old is not None and old not in pending:  # untouched by this batch: it stays
                content.append(old)
                content.sort()
            if not content:
                return EMPTY, None
            content_ints = [_from_bytes(k, "big") for k in content]
            return self.build(position, content, content_ints, 0, len(content))

        def joined(position: int, left: bytes, left_info, right: bytes, right_info) -> tuple[bytes, bytes | int | None]:
            """A node from its children's results; `False` info marks a child with no pending key (still stored)."""
            if left != EMPTY and right != EMPTY:
                if left_info is not False:
                    place(position << 1, left, left_info)
                if right_info is not False:
                    place((position << 1) | 1, right, right_info)
                return node_hash(left, right), position
            if left == EMPTY:
                if right == EMPTY:
                    return EMPTY, None
                h, info, child = right, right_info, (position << 1) | 1
            else:
                h, info, child = left, left_info, position << 1
            if info is False:  # the survivor moves up: its storage goes with it
                info = take(child)
            if type(info) is bytes:  # one item left: its leaf hangs here now
                return h, info
            return (node_hash(EMPTY, h) if child & 1 else node_hash(h, EMPTY)), info

        def update(position: int, lo: int, hi: int, old) -> tuple[bytes, bytes | int | None]:
            """(hash, info) of the subtree at `position`, whose old state is `old` (already taken from storage)
            and whose pending keys are batch[lo:hi] (non-empty)."""
            if type(old) is not int:
                return rebuilt(position, lo, hi, old)
            if hi - lo == 1:
                return single(position, lo, old)
            return general(position, lo, hi, old)

        def general(position: int, lo: int, hi: int, b: int) -> tuple[bytes, bytes | int | None]:
            """update() below a branching node b (position is b or on the chain above it)."""
            if multi_path is not None and changes_before[lo] == changes_before[hi]:
                done = multi_path(branch, leaf_at, items, hash_values, batch, lo, hi, position, b)
                if done is not None:
                    return done
            shift = _FULL_BITS - b.bit_length()  # 256 - depth of b
            if b != position:
                if ints[lo] >> shift == b and ints[hi - 1] >> shift == b:
                    # Every pending key stays on the chain down to b: the chain keeps its shape.
                    h, info = general(b, lo, hi, b)
                    if type(info) is not int:
                        return h, info  # a leaf moves up the whole chain, or nothing is left
                    return fold_up(node_hash, h, b, position), info
                # Some keys leave the chain. The first and last pending keys leave it highest (the batch is sorted
                # and the chain is one key range): split the chain at the last node all keys still share.
                leave_bits = max((ints[lo] >> shift ^ b).bit_length(), (ints[hi - 1] >> shift ^ b).bit_length())
                split = b >> leave_bits
                h, info = split_chain(split, lo, hi, b)
                if split == position or type(info) is not int:
                    return h, info  # (a leaf moves up the whole chain, or nothing is left)
                return fold_up(node_hash, h, split, position), info
            # position is the branching node itself: both children are stored
            cut = ((ints[lo] >> (shift - 1)) | 1) << (shift - 1)
            mid = bisect_left(ints, cut, lo, hi)
            left_id = b << 1
            right_id = left_id | 1
            # Each child with pending keys: take its entry and dispatch (inlined: one such step per shared node).
            if lo < mid:
                v = pop_branch(left_id, None)
                if v is None:
                    left, left_info = rebuilt(left_id, lo, mid, pop_leaf(left_id, None))
                else:
                    c = left_id if len(v) == 32 else _from_bytes(v[32:], "big")
                    left, left_info = single(left_id, lo, c) if mid - lo == 1 else general(left_id, lo, mid, c)
            else:
                left, left_info = settled(left_id), False
            if mid < hi:
                v = pop_branch(right_id, None)
                if v is None:
                    right, right_info = rebuilt(right_id, mid, hi, pop_leaf(right_id, None))
                else:
                    c = right_id if len(v) == 32 else _from_bytes(v[32:], "big")
                    right, right_info = single(right_id, mid, c) if hi - mid == 1 else general(right_id, mid, hi, c)
            else:
                right, right_info = settled(right_id), False
            if left != EMPTY and right != EMPTY:  # still branching (the usual case), inlined from joined()
                if left_info == left_id:
                    branch[left_id] = left
                elif left_info is not False:
                    place(left_id, left, left_info)
                if right_info == right_id:
                    branch[right_id] = right
                elif right_info is not False:
                    place(right_id, right, right_info)
                return node_hash(left, right), b
            return joined(b, left, left_info, right, right_info)

        def chain_hash(b: int, position: int) -> bytes:
            """Hash at a chain position above branching node b, the chain untouched below it."""
            return fold_up(node_hash, self.own_hash(b), b, position)

        def split_chain(split: int, lo: int, hi: int, b: int) -> tuple[bytes, bytes | int | None]:
            """(hash, info) at chain node `split` above b, where pending keys go both ways or off the chain."""
            on_chain = b >> (b.bit_length() - split.bit_length() - 1)
            shift = _FULL_BITS - split.bit_length() - 1  # the bit that chooses split's child
            mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
            if on_chain & 1:
                left, left_info = rebuilt(on_chain ^ 1, lo, mid, None) if lo < mid else (EMPTY, None)
                right, right_info = update(on_chain, mid, hi, b) if mid < hi else (chain_hash(b, on_chain), b)
            else:
                left, left_info = update(on_chain, lo, mid, b) if lo < mid else (chain_hash(b, on_chain), b)
                right, right_info = rebuilt(on_chain ^ 1, mid, hi, None) if mid < hi else (EMPTY, None)
            return joined(split, left, left_info, right, right_info)

        def single(position: int, i: int, old: int) -> tuple[bytes, bytes | int | None]:
            """update() for one pending key below a stored branching node `old`: walk down, then hash back up.

            Entries on the path stay stored while walking down and are overwritten on the way up; only the
            bottom position, and positions that collapse, are cleared explicitly. This is the hot loop of every
            batch (each dirty key below the batch's shared upper levels), so the usual case of every level (a
            branching node with no chain, a sibling stored as a branch or a leaf) is written out inline."""
            if single_path is not None:
                done = single_path(branch, leaf_at, items, hash_values, batch[i], position, old)
                if done is not None:
                    return done
            k = ints[i]
            path: list[tuple[int, int, bytes]] = []  # (top position, child of its branching node on the key's side, sibling hash), top-down
            push = path.append
            top, b = position, old
            bits = _FULL_BITS - b.bit_length()  # 256 - depth of b
            while True:
                if b != top and k >> bits != b:  # the key leaves the chain: a structural change
                    if top != position:
                        del branch[top]
                    h, info = general(top, i, i + 1, b)
                    break
                bits -= 1
                child = k >> bits
                v = get_branch(child ^ 1)
                if v is None:  # the sibling is a leaf (never empty: b branches)
                    leaf = leaf_at[child ^ 1]
                    push((top, child, hash_leaf(leaf, items[leaf])))
                elif len(v) == 32:
                    push((top, child, v))
                else:
                    push((top, child, v[:32]))
                v = get_branch(child)
                if v is None:  # the bottom: the key's own leaf, or a position that was empty or held another leaf
                    old_leaf = get_leaf(child)
                    if old_leaf is not None and old_leaf == batch[i] and old_leaf in items:  # a new value
                        h, info = hash_leaf(old_leaf, items[old_leaf]), old_leaf
                        break
                    h, info = rebuilt(child, i, i + 1, old_leaf)
                    if old_leaf is not None and info is not old_leaf:
                        del leaf_at[child]
                    break
                if len(v) == 32:
                    top = b = child
                else:
                    top, b = child, _from_bytes(v[32:], "big")
                    bits = _FULL_BITS - b.bit_length()
            # Hash back up: each branching node on the path, then the chain above it.
            if h == EMPTY and path:  # the key's side emptied: the sibling is all that is left of its parent
                top, child, sibling_hash = path.pop()
                branch.pop(child, None)
                info = take(child ^ 1)
                h = sibling_hash
                if type(info) is int:
                    h = fold_up(node_hash, sibling_hash, child ^ 1, top)
            pop = path.pop
            while path:  # from here h is never EMPTY: every sibling on the path is non-empty
                top, child, sibling_hash = pop()
                if info == child:  # the usual case: a branching node with no chain above it
                    branch[child] = h
                elif type(info) is int:
                    branch[child] = h + info.to_bytes((info.bit_length() + 7) >> 3, "big")
                else:
                    leaf_at[child] = info
                    branch.pop(child, None)  # it held a subtree that shrank to this one leaf
                if child & 1:
                    h = node_hash(sibling_hash, h)
                else:
                    h = node_hash(h, sibling_hash)
                info = child >> 1  # the branching node
                if info != top:
                    h = fold_up(node_hash, h, info, top)
            return h, info

        h, info = update(1, 0, len(batch), take(1))
        place(1, h, info)
        return h

    # ------------------------------------------------------------ proofs

    def path(self, key: bytes) -> tuple[list[bytes], bytes | None]:
        """Siblings top-down along key's path, and the key of the leaf where it ends (None: it ends empty)."""
        k = _from_bytes(key, "big") | KEY_SPACE
        siblings: list[bytes] = []
        top = 1
        branch = self.branch
        while True:
            v = branch.get(top)
            if v is None:
                return siblings, self.leaf_at.get(top)
            b = top if len(v) == 32 else _from_bytes(v[32:], "big")
            shift = _FULL_BITS - b.bit_length()
            on_path = k >> shift
            if on_path != b:
                # The key leaves the chain at the highest differing bit: from there its side is empty.
                leave_depth = b.bit_length() - 1 - ((on_path ^ b).bit_length() - 1)
                siblings.extend([EMPTY] * (leave_depth - top.bit_length()))
                own = k >> (KEY_BITS - leave_depth)
                siblings.append(fold_up(self.node_hash, self.own_hash(b), b, own ^ 1))
                return siblings, None
            siblings.extend([EMPTY] * (b.bit_length() - top.bit_length()))
            child = k >> (shift - 1)
            siblings.append(self.settled(child ^ 1))
            top = child
