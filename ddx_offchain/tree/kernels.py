"""The tree's hashing kernels and position maps: compiled (`_native.c`) when built, pure Python otherwise.

nodes.py is the one implementation of the tree; it calls these few primitives through a `Kernels` set, whose two
implementations are interchangeable (tests/tree/test_native.py checks the primitives, tests/tree/test_compiled.py
drives both through random update sequences and compares every root and proof):

- `node_hash(left, right)`, `leaf_hash(key, value_hash)`, `value_leaf_hash(key, value)` (= leaf_hash(key,
  keccak256(value))): the hashes of docs/protocol.md ("Hashing");
- `PosMap()`: an int -> object map with a dict's get/pop/[]/del/len/in/clear/items/keys, for stored positions;
- `single_path` (compiled only): the re-hash's per-key loop for its usual case, a value update along a path whose
  shape does not change; it returns None, having changed nothing, whenever the Python loop must run instead;
- `multi_path` (compiled only): the same for a whole range of pending keys that are all value updates; it walks
  the range first and then hashes its independent hashes eight at a time where the CPU has AVX-512.

`DEFAULT` is what a tree uses unless told otherwise: `COMPILED` when the extension was built at install time,
`PURE` (the reference) when `DDX_PURE_PYTHON=1` or when the extension is missing (no compiler at install time;
one line on stderr says so).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

from .. import PURE_PYTHON
from ..protocol.hashing import LEAF_PREFIX, NODE_PREFIX
from ..protocol.hashing import keccak256_bytes as _keccak


@dataclass(frozen=True)
class Kernels:
    name: str
    node_hash: Callable[[bytes, bytes], bytes]
    leaf_hash: Callable[[bytes, bytes], bytes]
    value_leaf_hash: Callable[[bytes, bytes], bytes]
    PosMap: Callable[[], Any]
    # nodes.py's `single` for its usual case (a value update along an unchanged path), or None to run the Python
    # loop; the pure set has none.
    single_path: Callable[..., Any] | None = None
    # nodes.py's `general` for a range of pending keys that are all value updates (no insert or delete), or None
    multi_path: Callable[..., Any] | None = None


def _node_hash(left: bytes, right: bytes) -> bytes:
    return _keccak(NODE_PREFIX + left + right)


def _leaf_hash(key: bytes, value_hash: bytes) -> bytes:
    return _keccak(LEAF_PREFIX + key + value_hash)


def _value_leaf_hash(key: bytes, value: bytes) -> bytes:
    return _keccak(LEAF_PREFIX + key + _keccak(value))


PURE = Kernels("pure-python", _node_hash, _leaf_hash, _value_leaf_hash, dict)

COMPILED: Kernels | None
try:
    from ._native import PosMap as _PosMap
    from ._native import leaf_hash as _c_leaf_hash
    from ._native import multi_path as _multi_path
    from ._native import node_hash as _c_node_hash
    from ._native import single_path as _single_path
    from ._native import value_leaf_hash as _c_value_leaf_hash

    COMPILED = Kernels(
        "compiled", _c_node_hash, _c_leaf_hash, _c_value_leaf_hash, _PosMap, _single_path, _multi_path
    )
except ImportError:  # built without a compiler, or the source tree was never built
    COMPILED = None

if PURE_PYTHON:  # DDX_PURE_PYTHON=1, read by ddx_offchain/__init__.py
    DEFAULT = PURE
elif COMPILED is not None:
    DEFAULT = COMPILED
else:
    DEFAULT = PURE
    print(
        "ddx: the compiled tree kernels (ddx_offchain/tree/_native.c) are not built; the state tree runs in pure"
        " Python, about 2x slower to re-hash (reinstall with gcc and the Python headers present to build them)",
        file=sys.stderr,
    )
