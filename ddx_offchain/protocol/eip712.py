"""EIP-712 building blocks shared by every signed message (docs/protocol.md §5 and §7).

Only static field types are used (address, bytes32, bool, uintN), so a struct's `encodeData` is exactly the
concatenation of one 32-byte word per field, and a struct hash is `keccak256(typeHash ‖ words)`.

Signatures are 65 bytes `r ‖ s ‖ v` with v in {27, 28}; only low-s signatures (s ≤ n/2, EIP-2) are accepted,
so a signature cannot be re-shaped into a second valid one for the same message.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import coincurve

from .errors import ProtocolError
from .hashing import keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2
SIGNATURE_LEN = 65

DOMAIN_NAME = "DDX"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
DOMAIN_TYPEHASH = keccak256(DOMAIN_TYPE.encode())

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BYTES32_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_UINT_RE = re.compile(r"^(0|[1-9][0-9]{0,77})$")


class SignatureError(ProtocolError):
    """A signature that is malformed, malleable (high s) or does not recover."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# ---------------------------------------------------------------- field codecs (ABI word + JSON form)

def _uint_bits(abi_type: str) -> int:
    return int(abi_type[4:])


def encode_word(abi_type: str, value) -> bytes:
    """One 32-byte ABI word for a static EIP-712 field (values already validated by `from_json`)."""
    if abi_type == "address":
        return b"\x00" * 12 + value
    if abi_type == "bytes32":
        return value
    if abi_type == "bool":
        return (1 if value else 0).to_bytes(32, "big")
    return value.to_bytes(32, "big")


def from_json(abi_type: str, name: str, value):
    """Parse one field's JSON form into its Python value, or raise ProtocolError naming the field.

    address: "0x" + 40 hex (checksum enforced when mixed case) -> 20 bytes; bytes32: "0x" + 64 hex -> 32 bytes;
    uintN: decimal string without sign or leading zeros -> int in [0, 2^N); bool: JSON true/false.
    """
    if abi_type == "address":
        if not isinstance(value, str) or not _ADDRESS_RE.match(value):
            raise ProtocolError(f"{name}: expected a 0x-prefixed 20-byte hex address")
        raw = bytes.fromhex(value[2:])
        body = value[2:]
        if body != body.lower() and body != body.upper() and checksum_address(raw) != value:
            raise ProtocolError(f"{name}: mixed-case address with a wrong EIP-55 checksum")
        return raw
    if abi_type == "bytes32":
        # str methods in C rather than a regex: this runs per field of every request (50 actions in a batch)
        if type(value) is not str or len(value) != 66 or not value.startswith("0x") or not value.isascii():
            raise ProtocolError(f"{name}: expected 0x-prefixed 32-byte hex")
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raw = b""
        if len(raw) != 32:  # fromhex skips whitespace: a 64-character string with spaces is short
            raise ProtocolError(f"{name}: expected 0x-prefixed 32-byte hex")
        return raw
    if abi_type == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{name}: expected true or false")
        return value
    if type(value) is not str or not (value.isascii() and value.isdigit()) or len(value) > 78 \
            or (value[0] == "0" and len(value) > 1):
        raise ProtocolError(f"{name}: expected an unsigned decimal integer string")
    number = int(value)
    if number >> _uint_bits(abi_type):
        raise ProtocolError(f"{name}: {value} does not fit in {abi_type}")
    return number


def to_json(abi_type: str, value):
    if abi_type == "address":
        return checksum_address(value)
    if abi_type == "bytes32":
        return "0x" + value.hex()
    if abi_type == "bool":
        return bool(value)
    return str(value)


def to_typed_data_value(abi_type: str, value):
    """The value as wallets take it in `eth_signTypedData_v4` / ethers `signTypedData` messages."""
    return to_json(abi_type, value)


@lru_cache(maxsize=65536)  # the same traders and operators recur on every request
def checksum_address(raw: bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address."""
    hex_addr = raw.hex()
    digest = keccak256(hex_addr.encode()).hex()
    return "0x" + "".join(c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(hex_addr))


def parse_address(value: str) -> bytes:
    return from_json("address", "address", value)


# ---------------------------------------------------------------- domain

@dataclass(frozen=True, slots=True)
class Domain:
    """EIP712Domain(name "DDX", version "1", chainId, verifyingContract = the exchange contract)."""

    chain_id: int
    verifying_contract: bytes  # 20 bytes

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, int) or not 0 < self.chain_id < 2**256:
            raise ProtocolError("chain id must be a positive uint256")
        if not isinstance(self.verifying_contract, bytes) or len(self.verifying_contract) != 20:
            raise ProtocolError("verifying contract must be a 20-byte address")

    @classmethod
    def of(cls, chain_id: int, verifying_contract: str) -> "Domain":
        return cls(chain_id, parse_address(verifying_contract))

    @property
    def separator(self) -> bytes:
        return keccak256(
            DOMAIN_TYPEHASH
            + keccak256(DOMAIN_NAME.encode())
            + keccak256(DOMAIN_VERSION.encode())
            + self.chain_id.to_bytes(32, "big")
            + b"\x00" * 12
            + self.verifying_contract
        )

    def digest(self, struct_hash: bytes) -> bytes:
        """The EIP-712 signing hash keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash)."""
        return keccak256(b"\x19\x01" + self.separator + struct_hash)

    def to_typed_data(self) -> dict:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": checksum_address(self.verifying_contract),
        }


class DomainCache:
    """A Domain with its separator computed once (the separator is hashed for every request)."""

    __slots__ = ("domain", "separator")

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.separator = domain.separator

    def digest(self, struct_hash: bytes) -> bytes:
        return keccak256(b"\x19\x01" + self.separator + struct_hash)


# ---------------------------------------------------------------- signatures

def parse_signature(value) -> bytes:
    if not isinstance(value, str) or len(value) != 2 + 2 * SIGNATURE_LEN or not value.startswith("0x"):
        raise SignatureError("bad_signature_format", "signature must be 0x + 130 hex digits (r, s, v)")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise SignatureError("bad_signature_format", "signature is not hex") from None


def check_signature_shape(signature: bytes) -> None:
    """Reject what no honest signer produces: wrong length, v not 27/28, r or s out of range, high s."""
    if len(signature) != SIGNATURE_LEN:
        raise SignatureError("bad_signature_format", f"signature must be {SIGNATURE_LEN} bytes")
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError("bad_signature_format", "signature v must be 27 or 28")
    if not 0 < r < SECP256K1_N or not 0 < s < SECP256K1_N:
        raise SignatureError("bad_signature_format", "signature r or s out of range")
    if s > SECP256K1_HALF_N:
        raise SignatureError("malleable_signature", "signature s is in the upper half of the curve order (EIP-2)")


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed `digest`; raises SignatureError if the signature is unacceptable."""
    check_signature_shape(signature)
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except Exception:  # coincurve raises a bare Exception for points that do not recover
        raise SignatureError("bad_signature", "signature does not recover to a public key") from None
    return keccak256(public_key.format(compressed=False)[1:])[12:]


def sign_digest(digest: bytes, private_key: bytes) -> bytes:
    """r ‖ s ‖ v (v = 27 + recovery id), low s (libsecp256k1 normalises), RFC 6979 deterministic."""
    signature = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes([signature[64] + 27])


class Signer:
    """A private key loaded once (deriving the public key costs as much as a signature)."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes) -> None:
        self._key = coincurve.PrivateKey(private_key)
        self.address = keccak256(self._key.public_key.format(compressed=False)[1:])[12:]

    def sign(self, digest: bytes) -> bytes:
        signature = self._key.sign_recoverable(digest, hasher=None)
        return signature[:64] + bytes([signature[64] + 27])


def address_of(private_key: bytes) -> bytes:
    public_key = coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    return keccak256(public_key[1:])[12:]
