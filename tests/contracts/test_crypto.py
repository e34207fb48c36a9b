"""ECDSA recovery and the EIP-712 domain (contracts/modules/ecdsa.vy, eip712.vy) against eth-account."""

import boa
import pytest
from eth_account import Account
from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_domain
from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.hashing import keccak256

from .conftest import HARNESS, factory, hypothesis_examples

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
KEY = "0x" + keccak256(b"crypto test key").hex()


@pytest.fixture(scope="module")
def crypto():
    return factory(HARNESS / "CryptoHarness.vy").deploy()


def _sign(digest: bytes, key: str = KEY) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, key).signature)


@settings(max_examples=hypothesis_examples(25), deadline=None)
@given(digest=st.binary(min_size=32, max_size=32), seed=st.binary(min_size=1, max_size=8))
def test_recovers_the_same_signer_as_eth_account(crypto, digest, seed):
    key = "0x" + keccak256(seed).hex()
    signature = _sign(digest, key)
    assert crypto.recover(digest, signature) == Account.from_key(key).address


def test_high_s_twin_is_refused(crypto):
    digest = keccak256(b"message")
    signature = _sign(digest)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # the other valid signature of the same key
    assert Account._recover_hash(digest, vrs=(55 - v, int.from_bytes(r, "big"), SECP256K1_N - s)) == Account.from_key(KEY).address
    with boa.reverts("ecdsa: high s"):
        crypto.recover(digest, twin)


@pytest.mark.parametrize("length", [0, 1, 64])
def test_short_signatures_are_refused(crypto, length):
    signature = _sign(keccak256(b"message"))
    with boa.reverts("ecdsa: signature length is not 65"):
        crypto.recover(keccak256(b"message"), signature[:length])


def test_longer_than_65_bytes_does_not_even_decode(crypto):
    signature = _sign(keccak256(b"message"))
    with boa.reverts():
        crypto.recover(keccak256(b"message"), signature + b"\x00")


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_v_other_than_27_or_28_is_refused(crypto, v):
    signature = _sign(keccak256(b"message"))
    with boa.reverts("ecdsa: v is not 27 or 28"):
        crypto.recover(keccak256(b"message"), signature[:64] + bytes([v]))


def test_recovery_to_the_zero_address_is_refused(crypto):
    # r = 0 is not a curve point: the precompile returns nothing, which reads as the zero address.
    with boa.reverts("ecdsa: invalid signature"):
        crypto.recover_parts(keccak256(b"message"), 0, 1, 27)
    # an x coordinate with no point on the curve (x = 5: 5^3 + 7 = 132 is not a square mod p)
    with boa.reverts("ecdsa: invalid signature"):
        crypto.recover_parts(keccak256(b"message"), 5, 1, 27)


def test_domain_separator_matches_eth_account(crypto):
    domain = om.Domain(chain_id=boa.env.evm.patch.chain_id, verifying_contract=crypto.address)
    struct_hash = keccak256(b"some struct")
    expected_domain = hash_domain(domain.as_typed_data())
    assert crypto.domain_separator() == expected_domain
    assert crypto.typed_digest(struct_hash) == keccak256(b"\x19\x01" + expected_domain + struct_hash)


def test_domain_reads_the_chain_id_live(crypto):
    before = crypto.domain_separator()
    chain_id = boa.env.evm.patch.chain_id
    try:
        boa.env.evm.patch.chain_id = chain_id + 1  # a fork that changed its chain id
        after = crypto.domain_separator()
        expected = om.Domain(chain_id=chain_id + 1, verifying_contract=crypto.address)
    finally:
        boa.env.evm.patch.chain_id = chain_id
    assert after != before
    assert after == hash_domain(expected.as_typed_data())
