# pragma version ~=0.4.3
"""
@title ECDSA signature recovery (secp256k1)
@notice Recovers the signer of a signature over a 32-byte digest, refusing every malleable or degenerate form:
        `s` in the upper half of the curve order (EIP-2), `v` other than 27 or 28, and a recovery that yields the
        zero address. Signatures travel as 65 bytes `r ‖ s ‖ v`; callers check that length (quorum.vy packs
        several signatures in one byte string and checks it is exactly 65 bytes per signer).
@dev Pure module: no storage. Written for ddx (no AGPL code); tested against eth-account.
"""

SIGNATURE_LENGTH: constant(uint256) = 65

# n / 2 for the secp256k1 group order n (0x7fff…20a0): an `s` above it has a twin `n - s` that also verifies.
SECP256K1_N_DIV_2: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168


@internal
@pure
def _recover(digest: bytes32, r: uint256, s: uint256, v: uint256) -> address:
    """
    @dev Reverts unless (r, s, v) is a canonical (low-s, v in {27, 28}) signature of `digest`.
    @return The address whose key signed `digest`.
    """
    assert s <= SECP256K1_N_DIV_2, "ecdsa: high s"
    assert v == 27 or v == 28, "ecdsa: v is not 27 or 28"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "ecdsa: invalid signature"
    return signer


@internal
@pure
def _recover_bytes(digest: bytes32, signature: Bytes[SIGNATURE_LENGTH]) -> address:
    """
    @dev `_recover` for one 65-byte `r ‖ s ‖ v` signature; any other length is refused.
    """
    assert len(signature) == SIGNATURE_LENGTH, "ecdsa: signature length is not 65"
    return self._recover(
        digest,
        extract32(signature, 0, output_type=uint256),
        extract32(signature, 32, output_type=uint256),
        convert(slice(signature, 64, 1), uint256),
    )
