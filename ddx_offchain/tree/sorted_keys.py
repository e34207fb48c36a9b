"""A sorted set of 32-byte keys with O(log n) insert, delete and successor search.

The tree needs one query the dicts cannot answer: "which key, if any, lies in the key range of this
subtree?" (the leaf hanging at a position that is not an internal node). Keys live in sorted blocks of
at most 2 * BLOCK entries plus a list of each block's last key, the layout of sortedcontainers'
SortedList, kept here because the tree needs only a successor search and it must cost a few hundred
nanoseconds (two C-level bisects), not the microseconds of a general-purpose iterator. Memory: one
pointer per key (the key objects are shared with the tree's dicts).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

BLOCK = 512  # blocks split at 2 * BLOCK keys; insort into a block stays a short memmove


class SortedKeys:
    __slots__ = ("_blocks", "_lasts", "_len")

    def __init__(self, ascending: Iterable[bytes] = ()) -> None:
        """`ascending` must be strictly increasing (callers pass sorted, de-duplicated keys)."""
        keys = list(ascending)
        self._blocks: list[list[bytes]] = [keys[i : i + BLOCK] for i in range(0, len(keys), BLOCK)]
        self._lasts: list[bytes] = [block[-1] for block in self._blocks]
        self._len = len(keys)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[bytes]:
        for block in self._blocks:
            yield from block

    def add(self, key: bytes) -> None:
        """Insert a key that is not present."""
        lasts = self._lasts
        i = bisect_left(lasts, key)
        if i == len(lasts):  # beyond every key: append to the last block (or start one)
            if not lasts:
                self._blocks.append([key])
                lasts.append(key)
                self._len = 1
                return
            i -= 1
            lasts[i] = key
        block = self._blocks[i]
        insort(block, key)
        self._len += 1
        if len(block) > 2 * BLOCK:
            half = block[BLOCK:]
            del block[BLOCK:]
            self._blocks.insert(i + 1, half)
            lasts[i] = block[-1]
            lasts.insert(i + 1, half[-1])

    def remove(self, key: bytes) -> None:
        """Remove a key that is present."""
        lasts = self._lasts
        i = bisect_left(lasts, key)
        block = self._blocks[i]
        j = bisect_left(block, key)
        del block[j]
        self._len -= 1
        if not block:
            del self._blocks[i]
            del lasts[i]
        elif j == len(block):
            lasts[i] = block[-1]

    def first_at_or_after(self, key: bytes) -> bytes | None:
        """The smallest stored key >= `key`, or None."""
        lasts = self._lasts
        i = bisect_left(lasts, key)
        if i == len(lasts):
            return None
        block = self._blocks[i]
        return block[bisect_left(block, key)]

    def between(self, low: bytes, high: bytes) -> list[bytes]:
        """All stored keys k with low <= k <= high, ascending."""
        lasts = self._lasts
        blocks = self._blocks
        i = bisect_left(lasts, low)
        if i == len(blocks):
            return []
        out: list[bytes] = []
        start = bisect_left(blocks[i], low)  # only the first block can hold keys below `low`
        while i < len(blocks):
            for k in blocks[i][start:]:
                if k > high:
                    return out
                out.append(k)
            i += 1
            start = 0
        return out
