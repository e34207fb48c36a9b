"""Operator messages: EIP-712 typed data for checkpoints and governance, and their quorum signatures.

docs/protocol.md, sections 5 and 6. The Vyper side is contracts/modules/{eip712,checkpoints,governance}.vy;
tests/contracts checks that signatures made here are accepted there (same digest) and nowhere else.

Pure: builds and signs messages with eth-account; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import is_address, to_checksum_address

from .errors import ProtocolError
from .hashing import keccak256
from .inbox import EMPTY_INBOX, InboxCursor

DOMAIN_NAME = "DDX"
DOMAIN_VERSION = "1"
MAX_OPERATORS = 32  # contracts/modules/quorum.vy MAX_OPERATORS
SIGNATURE_LENGTH = 65
# n / 2 for the secp256k1 group order n: the contract refuses an s above it (its twin n - s also verifies).
SECP256K1_N_DIV_2 = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


class Action(IntEnum):
    """The action tag every operator message carries (uint8 `action`)."""

    CHECKPOINT = 1
    ROTATE_OPERATORS = 2
    SET_THRESHOLD = 3
    SET_COLLATERAL = 4
    SET_RATE_LIMIT = 5
    CANCEL_CHANGE = 6


EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

# Field lists in signing order; the type strings in docs/protocol.md section 6 are these, joined.
MESSAGE_FIELDS: dict[str, list[tuple[str, str]]] = {
    "Checkpoint": [
        ("action", "uint8"),
        ("operatorSetId", "uint256"),
        ("epoch", "uint256"),
        ("stateRoot", "bytes32"),
        ("l1BlockNumber", "uint256"),
        ("l1BlockHash", "bytes32"),
        ("depositCount", "uint256"),
        ("forcedCount", "uint256"),
        ("inboxAcc", "bytes32"),
    ],
    "RotateOperators": [
        ("action", "uint8"),
        ("operatorSetId", "uint256"),
        ("nonce", "uint256"),
        ("members", "address[]"),
        ("threshold", "uint256"),
    ],
    "SetThreshold": [
        ("action", "uint8"),
        ("operatorSetId", "uint256"),
        ("nonce", "uint256"),
        ("threshold", "uint256"),
    ],
    "SetCollateral": [
        ("action", "uint8"),
        ("operatorSetId", "uint256"),
        ("nonce", "uint256"),
        ("token", "address"),
        ("allowed", "bool"),
    ],
    "SetRateLimit": [
        ("action", "uint8"),
        ("operatorSetId", "uint256"),
        ("nonce", "uint256"),
        ("token", "address"),
        ("capacity", "uint256"),
        ("period", "uint256"),
    ],
    "CancelChange": [
        ("action", "uint8"),
        ("operatorSetId", "uint256"),
        ("nonce", "uint256"),
        ("target", "uint256"),
    ],
}


def type_string(primary_type: str) -> str:
    """The EIP-712 type string, e.g. 'Checkpoint(uint8 action,uint256 operatorSetId,...)'."""
    fields = ",".join(f"{t} {n}" for n, t in MESSAGE_FIELDS[primary_type])
    return f"{primary_type}({fields})"


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one exchange deployment on one chain."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, int) or self.chain_id <= 0:
            raise ProtocolError(f"chain id must be a positive integer, got {self.chain_id!r}")
        object.__setattr__(self, "verifying_contract", _address(self.verifying_contract, "verifying contract"))

    def as_typed_data(self) -> dict:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True, slots=True)
class OperatorSet:
    """An operator set as the contract commits to it: id, threshold and members in ascending order."""

    id: int
    threshold: int
    members: tuple[str, ...]
    # The deployment's rule (the contract's `supermajority_required`): thresholds strictly above 2/3 unless a
    # deployment opted out. Not part of the commitment: the contract checks it when a set is installed.
    supermajority: bool = True

    def __post_init__(self) -> None:
        members = tuple(_address(m, "operator") for m in self.members)
        object.__setattr__(self, "members", members)
        _uint(self.id, "operator set id")
        check_operator_set(members, self.threshold, self.supermajority)

    def commitment(self) -> bytes:
        """keccak256(abi.encode(id, threshold, members)): what the contract stores."""
        return keccak256(abi_encode(["uint256", "uint256", "address[]"], [self.id, self.threshold, list(self.members)]))

    def as_abi(self) -> tuple:
        """The `OperatorSet` struct argument of submit_checkpoint and the governance calls."""
        return (self.id, self.threshold, list(self.members))

    def index_of(self, address: str) -> int:
        try:
            return self.members.index(_address(address, "operator"))
        except ValueError:
            raise ProtocolError(f"{address} is not in operator set {self.id}") from None


def check_operator_set(members: tuple[str, ...] | list[str], threshold: int, supermajority: bool = True) -> None:
    """The contract's set rules (quorum.vy `_check_set`): raises ProtocolError with the same wording."""
    if not members:
        raise ProtocolError("quorum: empty operator set")
    if len(members) > MAX_OPERATORS:
        raise ProtocolError(f"quorum: more than {MAX_OPERATORS} operators")
    if not isinstance(threshold, int) or threshold <= 0:
        raise ProtocolError("quorum: threshold is zero")
    if threshold > len(members):
        raise ProtocolError("quorum: threshold above set size")
    if supermajority and threshold * 3 <= len(members) * 2:
        raise ProtocolError("quorum: threshold not above 2/3 of the set")
    previous = 0
    for member in members:
        value = int(member, 16)
        if value == 0:
            raise ProtocolError("quorum: zero address operator")
        if value == previous:
            raise ProtocolError("quorum: duplicate operator")
        if value < previous:
            raise ProtocolError("quorum: operators not ascending")
        previous = value


def smallest_supermajority(count: int) -> int:
    """The smallest threshold strictly above 2/3 of `count` operators."""
    return count * 2 // 3 + 1


def sort_operators(addresses) -> tuple[str, ...]:
    """Operators in the contract's order: ascending by numeric address."""
    return tuple(sorted((_address(a, "operator") for a in addresses), key=lambda a: int(a, 16)))


# ---- messages ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    operator_set_id: int
    epoch: int
    state_root: bytes
    l1_block_number: int
    l1_block_hash: bytes
    # the L1 inbox the state covers (deposits and forced requests taken, rolling hash): protocol/inbox.py
    inbox: InboxCursor = EMPTY_INBOX

    primary_type = "Checkpoint"

    def message(self) -> dict:
        _bytes32(self.state_root, "state root")
        _bytes32(self.l1_block_hash, "L1 block hash")
        return {
            "action": int(Action.CHECKPOINT),
            "operatorSetId": _uint(self.operator_set_id, "operator set id"),
            "epoch": _uint(self.epoch, "epoch"),
            "stateRoot": bytes(self.state_root),
            "l1BlockNumber": _uint(self.l1_block_number, "L1 block number"),
            "l1BlockHash": bytes(self.l1_block_hash),
            "depositCount": _uint(self.inbox.deposits, "deposit count"),
            "forcedCount": _uint(self.inbox.forced, "forced count"),
            "inboxAcc": _bytes32_value(self.inbox.acc, "inbox acc"),
        }


@dataclass(frozen=True, slots=True)
class RotateOperators:
    operator_set_id: int
    nonce: int
    members: tuple[str, ...]
    threshold: int

    primary_type = "RotateOperators"

    def message(self) -> dict:
        return {
            "action": int(Action.ROTATE_OPERATORS),
            "operatorSetId": _uint(self.operator_set_id, "operator set id"),
            "nonce": _uint(self.nonce, "nonce"),
            "members": [_address(m, "operator") for m in self.members],
            "threshold": _uint(self.threshold, "threshold"),
        }


@dataclass(frozen=True, slots=True)
class SetThreshold:
    operator_set_id: int
    nonce: int
    threshold: int

    primary_type = "SetThreshold"

    def message(self) -> dict:
        return {
            "action": int(Action.SET_THRESHOLD),
            "operatorSetId": _uint(self.operator_set_id, "operator set id"),
            "nonce": _uint(self.nonce, "nonce"),
            "threshold": _uint(self.threshold, "threshold"),
        }


@dataclass(frozen=True, slots=True)
class SetCollateral:
    operator_set_id: int
    nonce: int
    token: str
    allowed: bool

    primary_type = "SetCollateral"

    def message(self) -> dict:
        if not isinstance(self.allowed, bool):
            raise ProtocolError("allowed must be a bool")
        return {
            "action": int(Action.SET_COLLATERAL),
            "operatorSetId": _uint(self.operator_set_id, "operator set id"),
            "nonce": _uint(self.nonce, "nonce"),
            "token": _address(self.token, "token"),
            "allowed": self.allowed,
        }


@dataclass(frozen=True, slots=True)
class SetRateLimit:
    operator_set_id: int
    nonce: int
    token: str
    capacity: int
    period: int

    primary_type = "SetRateLimit"

    def message(self) -> dict:
        return {
            "action": int(Action.SET_RATE_LIMIT),
            "operatorSetId": _uint(self.operator_set_id, "operator set id"),
            "nonce": _uint(self.nonce, "nonce"),
            "token": _address(self.token, "token"),
            "capacity": _uint(self.capacity, "capacity"),
            "period": _uint(self.period, "period"),
        }


@dataclass(frozen=True, slots=True)
class CancelChange:
    """Void the pending change announced under nonce `target` (it uses governance nonce `nonce` itself)."""

    operator_set_id: int
    nonce: int
    target: int

    primary_type = "CancelChange"

    def message(self) -> dict:
        return {
            "action": int(Action.CANCEL_CHANGE),
            "operatorSetId": _uint(self.operator_set_id, "operator set id"),
            "nonce": _uint(self.nonce, "nonce"),
            "target": _uint(self.target, "target"),
        }


OperatorMessage = Checkpoint | RotateOperators | SetThreshold | SetCollateral | SetRateLimit | CancelChange


def typed_data(message: OperatorMessage, domain: Domain) -> dict:
    """The full EIP-712 typed-data document (as accepted by eth_signTypedData_v4)."""
    primary = message.primary_type
    return {
        "types": {
            "EIP712Domain": EIP712_DOMAIN_FIELDS,
            primary: [{"name": n, "type": t} for n, t in MESSAGE_FIELDS[primary]],
        },
        "primaryType": primary,
        "domain": domain.as_typed_data(),
        "message": message.message(),
    }


def digest(message: OperatorMessage, domain: Domain) -> bytes:
    """keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message)): what each operator signs."""
    return _hash_eip191_message(encode_typed_data(full_message=typed_data(message, domain)))


def sign(message: OperatorMessage, domain: Domain, private_key) -> bytes:
    """A 65-byte r ‖ s ‖ v signature (low s, v in {27, 28}) as the contract expects."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data(message, domain)), private_key)
    return bytes(signed.signature)


def recover(message: OperatorMessage, domain: Domain, signature: bytes) -> str:
    """The checksummed address that signed `message` under `domain`. Refuses exactly what the contract refuses
    (ecdsa.vy): any length but 65, v other than 27 or 28, s in the upper half of the curve order; otherwise one
    operator could hand its peers a signature they count but the contract rejects, failing every relay."""
    if len(signature) != SIGNATURE_LENGTH:
        raise ProtocolError(f"signature must be {SIGNATURE_LENGTH} bytes, got {len(signature)}")
    if signature[64] not in (27, 28):
        raise ProtocolError(f"signature v must be 27 or 28, got {signature[64]}")
    if int.from_bytes(signature[32:64], "big") > SECP256K1_N_DIV_2:
        raise ProtocolError("signature has a high s (EIP-2)")
    return Account.recover_message(encode_typed_data(full_message=typed_data(message, domain)), signature=signature)


@dataclass(frozen=True, slots=True)
class QuorumSignatures:
    """The (signer_bitmap, signatures) pair the contract takes: bit i for members[i]; the 65-byte signatures
    concatenated in ascending bit order."""

    signer_bitmap: int
    signatures: tuple[bytes, ...]

    def packed(self) -> bytes:
        return b"".join(self.signatures)

    def as_abi(self) -> tuple[int, bytes]:
        return self.signer_bitmap, self.packed()


def assemble_quorum(operator_set: OperatorSet, signatures_by_signer: dict[str, bytes]) -> QuorumSignatures:
    """Order signatures for the contract; raises ProtocolError if they do not reach the set's threshold."""
    indexed = sorted((operator_set.index_of(signer), sig) for signer, sig in signatures_by_signer.items())
    if len(indexed) < operator_set.threshold:
        raise ProtocolError(f"{len(indexed)} signatures, operator set {operator_set.id} needs {operator_set.threshold}")
    bitmap = 0
    for index, signature in indexed:
        if len(signature) != SIGNATURE_LENGTH:
            raise ProtocolError(f"signature of operator {index} is {len(signature)} bytes, not {SIGNATURE_LENGTH}")
        bitmap |= 1 << index
    return QuorumSignatures(bitmap, tuple(sig for _, sig in indexed))


def sign_quorum(message: OperatorMessage, domain: Domain, operator_set: OperatorSet, private_keys) -> QuorumSignatures:
    """Sign `message` with each key (all must be members) and assemble the quorum."""
    signatures = {}
    for key in private_keys:
        account = Account.from_key(key)
        signatures[account.address] = sign(message, domain, key)
    return assemble_quorum(operator_set, signatures)


def checkpoint_call(
    message: Checkpoint, operator_set: OperatorSet, quorum: QuorumSignatures, leaves=()
) -> tuple[str, tuple]:
    """The exchange function and arguments that record `message`: `submit_checkpoint` when its state covers the
    inbox head (no `leaves`), else `submit_checkpoint_with_leaves` with the inbox leaves after its cursor."""
    head = (message.epoch, message.state_root, message.l1_block_number, message.l1_block_hash, message.inbox.as_abi())
    tail = (operator_set.as_abi(), *quorum.as_abi())
    if leaves:
        return "submit_checkpoint_with_leaves", (*head, list(leaves), *tail)
    return "submit_checkpoint", (*head, *tail)


# ---- validation helpers ------------------------------------------------------------------------------------


def _address(value, what: str) -> str:
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        value = "0x" + bytes(value).hex()
    if not isinstance(value, str) or not is_address(value):
        raise ProtocolError(f"{what} is not an address: {value!r:.60}")
    return to_checksum_address(value)


def _uint(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise ProtocolError(f"{what} must be a uint256, got {value!r:.60}")
    return value


def _bytes32(value, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise ProtocolError(f"{what} must be 32 bytes")


def _bytes32_value(value, what: str) -> bytes:
    _bytes32(value, what)
    return bytes(value)
