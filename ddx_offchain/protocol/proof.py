"""Proofs against a state root, and their verifier (docs/protocol.md, "Proofs").

Siblings are ordered bottom-up: siblings[0] is the sibling of the leaf (or empty slot) at depth
d = len(siblings); siblings[d-1] is a child of the root. Direction at depth j is bit j of the key,
counting from the most significant bit of key[0]; bit 1 means "we are the right child".
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProofError
from .hashing import EMPTY, NODE_PREFIX, keccak256, leaf_hash

MAX_DEPTH = 256
HASH_LEN = 32


def key_bit(key: bytes, depth: int) -> int:
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1


def common_prefix_bits(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 256 - x.bit_length()


def _check32(name: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_LEN:
        raise ProofError(f"{name} must be 32 bytes")


def _check_siblings(siblings: tuple[bytes, ...] | list[bytes]) -> None:
    if len(siblings) > MAX_DEPTH:
        raise ProofError(f"proof has {len(siblings)} siblings, at most {MAX_DEPTH} allowed")
    for i, s in enumerate(siblings):
        _check32(f"sibling {i}", s)


def fold_to_root(key: bytes, start: bytes, siblings: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Hash `start` (the subtree at depth len(siblings) on key's path) up to the root."""
    h = bytes(start)
    depth = len(siblings)
    # The key's first `depth` bits, so that bit i from the bottom is the direction at siblings[i]'s level.
    path = int.from_bytes(key, "big") >> (MAX_DEPTH - depth)
    for sibling in siblings:
        if path & 1:
            h = keccak256(NODE_PREFIX + sibling + h)
        else:
            h = keccak256(NODE_PREFIX + h + sibling)
        path >>= 1
    return h


@dataclass(frozen=True, slots=True)
class InclusionProof:
    key: bytes
    value_hash: bytes
    siblings: tuple[bytes, ...]

    def validate(self) -> None:
        _check32("key", self.key)
        _check32("value_hash", self.value_hash)
        _check_siblings(self.siblings)

    def root(self) -> bytes:
        self.validate()
        return fold_to_root(self.key, leaf_hash(self.key, self.value_hash), self.siblings)

    def to_json(self) -> dict:
        return {
            "key": "0x" + self.key.hex(),
            "value_hash": "0x" + self.value_hash.hex(),
            "siblings": ["0x" + s.hex() for s in self.siblings],
        }

    @classmethod
    def from_json(cls, data: dict) -> "InclusionProof":
        """Exactly {"key", "value_hash", "siblings"} (docs/protocol.md §4): any other field — a non-inclusion
        proof's `other_key`, say — makes it another document, refused rather than ignored."""
        _exact_fields(data, INCLUSION_FIELDS, INCLUSION_FIELDS, "inclusion")
        try:
            proof = cls(
                key=_hex32(data["key"]),
                value_hash=_hex32(data["value_hash"]),
                siblings=tuple(_hex32(s) for s in _bounded_list(data["siblings"])),
            )
        except (KeyError, TypeError) as exc:
            raise ProofError(f"malformed inclusion proof: {exc}") from None
        proof.validate()
        return proof


@dataclass(frozen=True, slots=True)
class NonInclusionProof:
    """Key is absent: its path ends in an empty slot, or in a leaf of another key sharing the path."""

    key: bytes
    siblings: tuple[bytes, ...]
    other_key: bytes | None = None  # None: the path ends in an empty subtree
    other_value_hash: bytes | None = None

    def validate(self) -> None:
        _check32("key", self.key)
        _check_siblings(self.siblings)
        if (self.other_key is None) != (self.other_value_hash is None):
            raise ProofError("other_key and other_value_hash go together")
        if self.other_key is not None:
            _check32("other_key", self.other_key)
            _check32("other_value_hash", self.other_value_hash)

    def root(self) -> bytes:
        """The root this proof implies; raises ProofError if the proof cannot show absence at all."""
        self.validate()
        if self.other_key is None:
            return fold_to_root(self.key, EMPTY, self.siblings)
        if self.other_key == self.key:
            raise ProofError("the leaf on the path is the key itself: that proves presence")
        if common_prefix_bits(self.key, self.other_key) < len(self.siblings):
            raise ProofError("the leaf on the path does not share the path with the key")
        return fold_to_root(self.key, leaf_hash(self.other_key, self.other_value_hash), self.siblings)

    def to_json(self) -> dict:
        out = {"key": "0x" + self.key.hex(), "siblings": ["0x" + s.hex() for s in self.siblings]}
        if self.other_key is not None:
            out["other_key"] = "0x" + self.other_key.hex()
            out["other_value_hash"] = "0x" + self.other_value_hash.hex()
        return out

    @classmethod
    def from_json(cls, data: dict) -> "NonInclusionProof":
        """{"key", "siblings"}, plus "other_key" and "other_value_hash" together or not at all; nothing else."""
        _exact_fields(data, NON_INCLUSION_FIELDS, {"key", "siblings"}, "non-inclusion")
        if ("other_key" in data) != ("other_value_hash" in data):
            raise ProofError("malformed non-inclusion proof: other_key and other_value_hash go together")
        try:
            other = data.get("other_key")
            proof = cls(
                key=_hex32(data["key"]),
                siblings=tuple(_hex32(s) for s in _bounded_list(data["siblings"])),
                other_key=_hex32(other) if other is not None else None,
                other_value_hash=_hex32(data["other_value_hash"]) if other is not None else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProofError(f"malformed non-inclusion proof: {exc}") from None
        proof.validate()
        return proof


INCLUSION_FIELDS = frozenset({"key", "value_hash", "siblings"})
NON_INCLUSION_FIELDS = frozenset({"key", "siblings", "other_key", "other_value_hash"})


def _exact_fields(data: object, allowed: frozenset, required: set | frozenset, kind: str) -> None:
    if not isinstance(data, dict):
        raise ProofError(f"malformed {kind} proof: not a JSON object")
    unknown, missing = set(data) - allowed, set(required) - set(data)
    if unknown or missing:
        raise ProofError(f"malformed {kind} proof: unknown fields {sorted(unknown)}, missing {sorted(missing)}")


def verify_inclusion(root: bytes, proof: InclusionProof) -> bool:
    """True iff `proof` shows (key, value_hash) is in the tree with this root. Malformed proofs are False."""
    try:
        return proof.root() == root
    except ProofError:
        return False


def verify_non_inclusion(root: bytes, proof: NonInclusionProof) -> bool:
    try:
        return proof.root() == root
    except ProofError:
        return False


def _bounded_list(value) -> list:
    if not isinstance(value, list):
        raise ProofError("siblings must be a list")
    if len(value) > MAX_DEPTH:
        raise ProofError(f"proof has {len(value)} siblings, at most {MAX_DEPTH} allowed")
    return value


def _hex32(value) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise ProofError(f"expected 0x-prefixed 32-byte hex, got {value!r:.80}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ProofError(f"not hex: {value!r:.80}") from None
