"""The L1 inbox: deposit and forced-request leaves, the rolling hash over them, and forced-request fields
(docs/protocol.md §6.4 and §6.5; contracts/modules/inbox.vy and forced.vy compute the same bytes).

    leaf(deposit) = 0x01 ‖ keccak256(abi.encode(uint256 seq, address trader, bytes32 strategy, address token,
                                                uint256 amount))[1:]
    leaf(forced)  = 0x02 ‖ keccak256(uint256 seq ‖ address trader ‖ uint256 requestType ‖ fields)[1:]
    acc_0 = 0x00…00,   acc_n = keccak256(acc_{n-1} ‖ leaf_n)

An `InboxCursor` (deposits taken, forced requests taken, acc after them) is what the engine's state records and
what every checkpoint states; the contract accepts a cursor behind its head only with the leaves in between.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ProtocolError
from .hashing import keccak256

KIND_DEPOSIT = 0x01
KIND_FORCED = 0x02
ZERO32 = b"\x00" * 32
WORD = 32
MAX_SUFFIX = 1024  # contracts/modules/inbox.vy MAX_SUFFIX
MAX_FIELDS_WORDS = 9  # contracts/modules/inbox.vy MAX_FIELDS_BYTES / 32


def _word(value: int) -> bytes:
    return value.to_bytes(WORD, "big")


def _address_word(address: bytes) -> bytes:
    if len(address) != 20:
        raise ProtocolError("an address is 20 bytes")
    return b"\x00" * 12 + address


def _leaf(kind: int, entry_hash: bytes) -> bytes:
    return bytes((kind,)) + entry_hash[1:]


def deposit_leaf(seq: int, trader: bytes, strategy: bytes, token: bytes, amount: int) -> bytes:
    return _leaf(KIND_DEPOSIT, keccak256(_word(seq) + _address_word(trader) + strategy + _address_word(token) + _word(amount)))


def forced_leaf(seq: int, trader: bytes, request_type: int, fields: bytes) -> bytes:
    return _leaf(KIND_FORCED, keccak256(_word(seq) + _address_word(trader) + _word(request_type) + fields))


def fold(acc: bytes, leaf: bytes) -> bytes:
    return keccak256(acc + leaf)


@dataclass(frozen=True, slots=True)
class InboxCursor:
    """How much of the L1 inbox a state has taken: counts per kind and the rolling hash after them."""

    deposits: int = 0
    forced: int = 0
    acc: bytes = ZERO32

    @property
    def entries(self) -> int:
        return self.deposits + self.forced

    def after(self, leaves: Iterable[bytes]) -> "InboxCursor":
        """This cursor moved past `leaves` (in inbox order)."""
        deposits, forced, acc = self.deposits, self.forced, self.acc
        for leaf in leaves:
            if leaf[0] == KIND_DEPOSIT:
                deposits += 1
            elif leaf[0] == KIND_FORCED:
                forced += 1
            else:
                raise ProtocolError(f"inbox leaf of unknown kind {leaf[0]}")
            acc = fold(acc, leaf)
        return InboxCursor(deposits, forced, acc)

    def as_abi(self) -> tuple[int, int, bytes]:
        """The `InboxCursor` struct argument of submit_checkpoint."""
        return (self.deposits, self.forced, self.acc)

    def to_json(self) -> dict:
        return {"deposits": self.deposits, "forced": self.forced, "acc": "0x" + self.acc.hex()}


EMPTY_INBOX = InboxCursor()


def fields_words(fields: bytes) -> list[bytes]:
    """A forced request's fields as its 32-byte words; raises ProtocolError unless it is 1..7 whole words."""
    if len(fields) % WORD or not 0 < len(fields) <= MAX_FIELDS_WORDS * WORD:
        raise ProtocolError(f"forced-request fields must be 1..{MAX_FIELDS_WORDS} words, got {len(fields)} bytes")
    return [fields[i : i + WORD] for i in range(0, len(fields), WORD)]
