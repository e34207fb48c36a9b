"""What the chain side knows about L1 blocks and the inbox (deposits, forced requests), as plain values (pure: no
web3, no I/O).

The shells (rpc.py) turn RPC answers into these; the decision logic (follower.py, verification.py) and the
engine's `ChainBlock` command are fed from them, so the same value flows from the RPC to the log unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...engine.commands import ChainBlock, Deposit, ForcedRequest
from ...errors import DdxError
from ...protocol import inbox as ib
from ...protocol.errors import ProtocolError
from ...protocol.hashing import keccak256

ZERO_HASH = b"\x00" * 32


class ChainDataError(DdxError, ValueError):
    """An RPC answer that is not a well-formed block header or deposit event."""


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    hash: bytes
    parent_hash: bytes

    def __post_init__(self) -> None:
        _uint(self.number, "block number")
        _b32(self.hash, "block hash")
        _b32(self.parent_hash, "parent hash")


@dataclass(frozen=True, slots=True)
class DepositEvent:
    """One `Deposit` event of the custody contract (contracts/modules/custody.vy), where it was logged."""

    seq: int
    trader: bytes  # 20 bytes
    strategy: bytes  # 32 bytes
    token: bytes  # 20 bytes
    amount: int
    block_number: int
    block_hash: bytes
    log_index: int

    def __post_init__(self) -> None:
        _uint(self.seq, "deposit seq")
        if self.seq == 0:
            raise ChainDataError("deposit seq starts at 1")
        _b20(self.trader, "deposit trader")
        _b32(self.strategy, "deposit strategy")
        _b20(self.token, "deposit token")
        _uint(self.amount, "deposit amount")
        _uint(self.block_number, "deposit block number")
        _b32(self.block_hash, "deposit block hash")
        _uint(self.log_index, "deposit log index")

    def as_engine_deposit(self) -> Deposit:
        return Deposit(self.seq, self.trader, self.strategy, self.token, self.amount)

    def fields(self) -> tuple:
        """What a chain-block command carries of it (and what a verifier compares)."""
        return (self.seq, self.trader, self.strategy, self.token, self.amount)

    def leaf(self) -> bytes:
        return ib.deposit_leaf(self.seq, self.trader, self.strategy, self.token, self.amount)


@dataclass(frozen=True, slots=True)
class ForcedEvent:
    """One `ForcedRequest` event (contracts/modules/forced.vy), where it was logged."""

    seq: int
    trader: bytes  # 20 bytes: the caller
    request_type: int
    deposits_before: int
    fields: bytes  # whole 32-byte words
    block_number: int
    block_hash: bytes
    log_index: int

    def __post_init__(self) -> None:
        _uint(self.seq, "forced seq")
        if self.seq == 0:
            raise ChainDataError("forced seq starts at 1")
        _b20(self.trader, "forced trader")
        _uint(self.request_type, "forced request type")
        _uint(self.deposits_before, "forced deposits_before")
        if not isinstance(self.fields, bytes):
            raise ChainDataError("forced fields must be bytes")
        try:
            ib.fields_words(self.fields)
        except ProtocolError as exc:
            raise ChainDataError(str(exc)) from None
        _uint(self.block_number, "forced block number")
        _b32(self.block_hash, "forced block hash")
        _uint(self.log_index, "forced log index")

    def as_engine_forced(self) -> ForcedRequest:
        return ForcedRequest.of(self.seq, self.deposits_before, self.trader, self.request_type, self.fields)

    def fields_tuple(self) -> tuple:
        """What a chain-block command carries of it (and what a verifier compares)."""
        return (self.seq, self.deposits_before, self.trader, self.request_type, self.fields)

    def leaf(self) -> bytes:
        return ib.forced_leaf(self.seq, self.trader, self.request_type, self.fields)


InboxEvent = DepositEvent | ForcedEvent


def inbox_order(events) -> list:
    """Inbox events in the order the contract folded them: block, then log index."""
    return sorted(events, key=lambda e: (e.block_number, e.log_index))


@dataclass(frozen=True, slots=True)
class ConfirmedBlock:
    """A block past the confirmation depth, with every deposit and forced request it logged, each in log order."""

    number: int
    hash: bytes
    deposits: tuple[DepositEvent, ...] = ()
    forced: tuple[ForcedEvent, ...] = ()

    def leaves(self) -> list[bytes]:
        """Its inbox leaves in the contract's order."""
        return [e.leaf() for e in inbox_order(self.deposits + self.forced)]

    def request_id(self) -> bytes:
        """A deterministic id for the chain-block command: the same block always yields the same command."""
        return keccak256(b"ddx chain block" + self.number.to_bytes(32, "big") + self.hash)

    def command(self) -> ChainBlock:
        """The engine command the leader sequences for this block."""
        return ChainBlock(
            request_id=self.request_id(),
            block_number=self.number,
            block_hash=self.hash,
            deposits=tuple(d.as_engine_deposit() for d in self.deposits),
            forced=tuple(f.as_engine_forced() for f in self.forced),
        )


@dataclass(frozen=True, slots=True)
class SequencedBlock:
    """A chain block as the log says it was sequenced (the engine accepted it): what the verifier checks."""

    number: int
    hash: bytes
    deposits: tuple[tuple, ...]  # DepositEvent.fields() tuples
    forced: tuple[tuple, ...] = ()  # ForcedEvent.fields_tuple() tuples

    @classmethod
    def from_command(cls, command: ChainBlock) -> "SequencedBlock":
        return cls(
            number=command.block_number,
            hash=command.block_hash,
            deposits=tuple((d.seq, d.trader, d.strategy, d.token, d.amount) for d in command.deposits),
            forced=tuple(
                (f.seq, f.deposits_before, f.trader, f.request_type, f.field_bytes()) for f in command.forced
            ),
        )


def _uint(value, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise ChainDataError(f"{what} must be a uint256, got {value!r:.60}")


def _b32(value, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ChainDataError(f"{what} must be 32 bytes")


def _b20(value, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 20:
        raise ChainDataError(f"{what} must be 20 bytes")
