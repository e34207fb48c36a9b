"""What the chain side knows about L1 blocks and deposits, as plain values (pure: no web3, no I/O).

The shells (rpc.py) turn RPC answers into these; the decision logic (follower.py, verification.py) and the
engine's `ChainBlock` command are fed from them, so the same value flows from the RPC to the log unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...engine.commands import ChainBlock, Deposit
from ...errors import DdxError
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


@dataclass(frozen=True, slots=True)
class ConfirmedBlock:
    """A block past the confirmation depth, with every deposit it logged, in log order."""

    number: int
    hash: bytes
    deposits: tuple[DepositEvent, ...] = ()

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
        )


@dataclass(frozen=True, slots=True)
class SequencedBlock:
    """A chain block as the log says it was sequenced (the engine accepted it): what the verifier checks."""

    number: int
    hash: bytes
    deposits: tuple[tuple, ...]  # DepositEvent.fields() tuples

    @classmethod
    def from_command(cls, command: ChainBlock) -> "SequencedBlock":
        return cls(
            number=command.block_number,
            hash=command.block_hash,
            deposits=tuple((d.seq, d.trader, d.strategy, d.token, d.amount) for d in command.deposits),
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
