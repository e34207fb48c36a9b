"""The L2 book checksum (docs/api.md, "Book checksum"): what a node sends with every book snapshot and delta, so a
client that maintains the book from deltas can prove its copy equal to the node's top levels.

    text     = up to 25 bids, best (highest) first, as "price:size", joined by ","
               + "|" +
               up to 25 asks, best (lowest) first, as "price:size", joined by ","
    checksum = CRC-32 (IEEE 802.3, zlib.crc32) of the ASCII text, an unsigned 32-bit integer

Prices and sizes are the engine's integers in decimal; an empty book is the text "|".
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

CHECKSUM_DEPTH = 25


def checksum_string(bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], depth: int = CHECKSUM_DEPTH) -> str:
    b = ",".join(f"{p}:{s}" for p, s in list(bids)[:depth])
    a = ",".join(f"{p}:{s}" for p, s in list(asks)[:depth])
    return f"{b}|{a}"


def book_checksum(bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]], depth: int = CHECKSUM_DEPTH) -> int:
    return zlib.crc32(checksum_string(bids, asks, depth).encode("ascii"))
