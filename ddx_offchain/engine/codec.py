"""Fast ABI words for item keys and values (docs/protocol.md §2), equal byte-for-byte to
`protocol.items.item_key/item_value` for static types (tests/engine/test_codec.py checks it).

eth_abi is general and slow (~20 µs per value); the engine writes thousands of items per root, so it builds the
32-byte words itself: uintN/intN big-endian two's complement, address left-padded with 12 zero bytes, bytes32 as is.
"""

from __future__ import annotations

from ..protocol.hashing import keccak256

ZERO12 = b"\x00" * 12
ZERO32 = b"\x00" * 32
SMALL_WORD = tuple(i.to_bytes(32, "big") for i in range(256))  # uint8 words, looked up instead of encoded
_KIND_WORD = SMALL_WORD
_INT256_MIN = -(1 << 255)
_UINT256_LIMIT = 1 << 256


def uint_word(x: int) -> bytes:
    return x.to_bytes(32, "big")


def int_word(x: int) -> bytes:
    return x.to_bytes(32, "big", signed=True)


def address_word(address: bytes) -> bytes:
    return ZERO12 + address


def key_of(kind: int, identity: bytes) -> bytes:
    """key = kind byte ‖ low 31 bytes of keccak256(abi.encode(uint8 kind, id…)); `identity` is the id words."""
    return bytes((kind,)) + keccak256(_KIND_WORD[kind] + identity)[1:]


def kind_word(kind: int) -> bytes:
    """The first word of every value of `kind`: abi.encode(uint8 kind)."""
    return _KIND_WORD[kind]


def value_of(kind: int, fields: bytes) -> bytes:
    """value = abi.encode(uint8 kind, field…); `fields` is the field words."""
    return _KIND_WORD[kind] + fields


def split_words(value: bytes, kind: int, count: int) -> list[bytes]:
    """The field words of an item value, checking its kind word and length."""
    if len(value) != 32 * (count + 1) or value[:32] != _KIND_WORD[kind]:
        raise ValueError(f"not a kind-{kind} value of {count} fields")
    return [value[i : i + 32] for i in range(32, len(value), 32)]


def word_uint(word: bytes) -> int:
    return int.from_bytes(word, "big")


def word_int(word: bytes) -> int:
    return int.from_bytes(word, "big", signed=True)


def word_address(word: bytes) -> bytes:
    if word[:12] != ZERO12:
        raise ValueError("address word with non-zero padding")
    return word[12:]
