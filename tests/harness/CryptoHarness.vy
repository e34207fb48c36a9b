# pragma version ~=0.4.3
"""
@title Test harness exposing the ecdsa and eip712 modules
@notice Test-only: lets Python compare signature recovery and EIP-712 digests with eth-account. Never deployed.
"""

from contracts.modules import ecdsa
from contracts.modules import eip712


@external
@pure
def recover(digest: bytes32, signature: Bytes[ecdsa.SIGNATURE_LENGTH]) -> address:
    """
    @notice The signer of a 65-byte signature; reverts on any non-canonical form.
    """
    return ecdsa._recover_bytes(digest, signature)


@external
@pure
def recover_parts(digest: bytes32, r: uint256, s: uint256, v: uint256) -> address:
    """
    @notice The signer of (r, s, v); reverts on any non-canonical form.
    """
    return ecdsa._recover(digest, r, s, v)


@external
@view
def domain_separator() -> bytes32:
    """
    @notice The EIP-712 domain separator, as if this harness were the exchange.
    """
    return eip712._domain_separator()


@external
@view
def typed_digest(struct_hash: bytes32) -> bytes32:
    """
    @notice keccak256(0x1901 ‖ domain separator ‖ struct_hash).
    """
    return eip712._typed_digest(struct_hash)
