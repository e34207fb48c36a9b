"""Item kinds, keys and leaf encodings (docs/protocol.md, "Items").

key(kind, id...) = (uint256(keccak256(abi.encode(uint8 kind, id...))) mod 2**248) | kind << 248
value          = abi.encode(uint8 kind, fields...)          (static ABI types only)
value_hash     = keccak256(value)
"""

from __future__ import annotations

from enum import IntEnum

from eth_abi import encode as abi_encode

from .errors import ProtocolError
from .hashing import keccak256

_LOW_248 = (1 << 248) - 1


class Kind(IntEnum):
    TRADER = 0x01
    STRATEGY = 0x02
    POSITION = 0x03
    ORDER = 0x04
    PRICE = 0x05
    INSURANCE_FUND = 0x06
    WITHDRAWAL = 0x07  # cumulative withdrawable per (trader, token): what claims prove
    BALANCE = 0x08  # per (trader, token) escape-hatch balance and deposits credited
    EPOCH = 0x09
    MARKET = 0x0A
    FEE_ACCOUNT = 0x0B
    SYSTEM = 0x0C  # sequencing cursors (deposit sequence, last chain block, time)
    FUNDING = 0x0D
    AGENT = 0x0E  # a trader's approval of an agent key (docs/engine.md, "Agents")
    TRIGGER = 0x10  # a conditional (stop, take-profit) order waiting for its mark price (docs/engine.md §4.8)
    TWAP = 0x11  # a TWAP order in progress (docs/engine.md §4.9)
    SCHEDULE = 0x0F  # a scheduled cancel, the dead man's switch (docs/engine.md, "Scheduled cancels")


def item_key(kind: int, id_types: list[str], id_values: list) -> bytes:
    """The 32-byte key of an item: its kind in the first byte, a hash of its identity in the other 31."""
    if not 0 < kind < 256:
        raise ProtocolError(f"item kind {kind} out of range 1..255")
    digest = keccak256(abi_encode(["uint8", *id_types], [kind, *id_values]))
    return ((int.from_bytes(digest, "big") & _LOW_248) | (kind << 248)).to_bytes(32, "big")


def item_value(kind: int, field_types: list[str], field_values: list) -> bytes:
    """The kind-tagged ABI encoding whose keccak256 is the leaf's value hash."""
    return abi_encode(["uint8", *field_types], [kind, *field_values])


def value_hash(value: bytes) -> bytes:
    return keccak256(value)


# The two items the contracts read. Addresses are 0x-hex strings or 20-byte values.

def withdrawal_key(trader: str, token: str) -> bytes:
    return item_key(Kind.WITHDRAWAL, ["address", "address"], [trader, token])


def withdrawal_value(trader: str, token: str, cumulative: int) -> bytes:
    if cumulative < 0:
        raise ProtocolError("cumulative withdrawable is never negative")
    return item_value(Kind.WITHDRAWAL, ["address", "address", "uint256"], [trader, token, cumulative])


def balance_key(trader: str, token: str) -> bytes:
    return item_key(Kind.BALANCE, ["address", "address"], [trader, token])


def balance_value(trader: str, token: str, amount: int, deposited: int) -> bytes:
    """BALANCE(trader, token): the escape-hatch `amount` and the cumulative deposits the engine had credited to the
    pair, `deposited`; the contract adds back on-chain deposits beyond it (docs/contracts.md, "Escape hatch").
    (0, 0) is never a leaf: a pair without one is proven absent."""
    if amount < 0 or deposited < 0:
        raise ProtocolError("escape balance and credited deposits are never negative")
    return item_value(Kind.BALANCE, ["address", "address", "uint256", "uint256"], [trader, token, amount, deposited])


def _leaf_words(value: bytes, kind: Kind, words: int) -> list[bytes]:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32 * words:
        raise ProtocolError(f"a {kind.name} value is {32 * words} bytes, got {len(value) if isinstance(value, (bytes, bytearray)) else value!r:.40}")
    out = [bytes(value[i : i + 32]) for i in range(0, len(value), 32)]
    if int.from_bytes(out[0], "big") != kind:
        raise ProtocolError(f"not a {kind.name} value (kind byte {out[0][-1]})")
    for word in out[1:3]:
        if word[:12] != b"\x00" * 12:
            raise ProtocolError(f"{kind.name} value: address word with non-zero padding")
    return out


def decode_withdrawal_value(value: bytes) -> tuple[bytes, bytes, int]:
    """(trader, token, cumulative) of a WITHDRAWAL value: the inverse of `withdrawal_value`."""
    w = _leaf_words(value, Kind.WITHDRAWAL, 4)
    return w[1][12:], w[2][12:], int.from_bytes(w[3], "big")


def decode_balance_value(value: bytes) -> tuple[bytes, bytes, int, int]:
    """(trader, token, amount, deposited) of a BALANCE value: the inverse of `balance_value`."""
    w = _leaf_words(value, Kind.BALANCE, 5)
    return w[1][12:], w[2][12:], int.from_bytes(w[3], "big"), int.from_bytes(w[4], "big")
