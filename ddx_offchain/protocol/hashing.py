"""keccak256 and the two domain-separated tree hashes (docs/protocol.md, "Hashing").

keccak comes from safe-pysha3 (C, ~0.8 us per 64-byte input here), with eth-hash as a fallback;
benchmarks/tree.py measures the choice.
"""

from __future__ import annotations

try:  # the fast C implementation
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        return _keccak_256(data).digest()

    KECCAK_BACKEND = "safe-pysha3"
except ImportError:  # pragma: no cover - only without safe-pysha3
    from eth_hash.auto import keccak as _eth_keccak

    def keccak256(data: bytes) -> bytes:
        return _eth_keccak(data)

    KECCAK_BACKEND = "eth-hash"

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY = b"\x00" * 32


def leaf_hash(key: bytes, value_hash: bytes) -> bytes:
    """keccak256(0x00 || key || value_hash): a leaf can never be read as an internal node."""
    return keccak256(LEAF_PREFIX + key + value_hash)


def node_hash(left: bytes, right: bytes) -> bytes:
    """keccak256(0x01 || left || right)."""
    return keccak256(NODE_PREFIX + left + right)
