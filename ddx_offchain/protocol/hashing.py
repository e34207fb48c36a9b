"""keccak256 and the two domain-separated tree hashes (docs/protocol.md, "Hashing").

The backend is chosen by measurement (benchmarks/tree.py reports every candidate): tiny-keccak (Rust, one
function call, about 0.4 us per 65-byte input on the reference machine) ahead of safe-pysha3 (C, about 0.7 us:
it builds a hash object and then a digest) and pycryptodome / eth-hash (about 4.5-5 us).
"""

from __future__ import annotations

try:  # the fastest wheel on PyPI for this job
    from tiny_keccak import keccak256 as _tiny_keccak256

    def keccak256(data: bytes) -> bytes:
        return _tiny_keccak256(bytes(data))

    # Hot paths (the tree) call this directly with `bytes`, skipping the conversion above.
    keccak256_bytes = _tiny_keccak256
    KECCAK_BACKEND = "tiny-keccak"
except ImportError:  # pragma: no cover - only without tiny-keccak
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        return _keccak_256(data).digest()

    keccak256_bytes = keccak256
    KECCAK_BACKEND = "safe-pysha3"

def keccak256_chunked(data: bytes, chunk: int = 1 << 20) -> bytes:
    """keccak256 of a large buffer fed in `chunk`-byte pieces: the same digest, but a thread hashing 50 MB hands
    the GIL back between pieces instead of holding it for the whole buffer (snapshot encoding off the loop)."""
    from sha3 import keccak_256  # safe-pysha3: the incremental keccak among our dependencies

    state = keccak_256()
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        state.update(view[start : start + chunk])
    return state.digest()


LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY = b"\x00" * 32


def leaf_hash(key: bytes, value_hash: bytes) -> bytes:
    """keccak256(0x00 || key || value_hash): a leaf can never be read as an internal node."""
    return keccak256(LEAF_PREFIX + key + value_hash)


def node_hash(left: bytes, right: bytes) -> bytes:
    """keccak256(0x01 || left || right)."""
    return keccak256(NODE_PREFIX + left + right)
