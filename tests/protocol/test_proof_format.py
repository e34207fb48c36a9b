"""The proof format of docs/protocol.md, checked by hand-built trees (the tree package is tested on its own)."""

import pytest

from ddx_offchain.protocol import items
from ddx_offchain.protocol.errors import ProofError
from ddx_offchain.protocol.hashing import EMPTY, keccak256, leaf_hash, node_hash
from ddx_offchain.protocol.proof import InclusionProof, NonInclusionProof, verify_inclusion, verify_non_inclusion

TRADER = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20


def test_keccak_is_ethereum_keccak_not_sha3():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_key_carries_kind_in_first_byte():
    key = items.withdrawal_key(TRADER, TOKEN)
    assert key[0] == items.Kind.WITHDRAWAL
    assert items.balance_key(TRADER, TOKEN)[0] == items.Kind.BALANCE
    assert key != items.balance_key(TRADER, TOKEN)


def _two_leaf_tree():
    # keys differing at bit 0: a = 0x00.., b = 0x80..; root = node(leaf_a, leaf_b)
    a, b = b"\x00" + b"\x01" * 31, b"\x80" + b"\x02" * 31
    va, vb = keccak256(b"a"), keccak256(b"b")
    root = node_hash(leaf_hash(a, va), leaf_hash(b, vb))
    return a, va, b, vb, root


def test_inclusion_in_two_leaf_tree():
    a, va, b, vb, root = _two_leaf_tree()
    assert verify_inclusion(root, InclusionProof(a, va, (leaf_hash(b, vb),)))
    assert verify_inclusion(root, InclusionProof(b, vb, (leaf_hash(a, va),)))
    assert not verify_inclusion(root, InclusionProof(a, vb, (leaf_hash(b, vb),)))


def test_internal_node_cannot_pose_as_leaf():
    a, va, b, vb, root = _two_leaf_tree()
    # present the root's children as a "leaf" one level up: must fail whatever key is claimed
    assert not verify_inclusion(root, InclusionProof(a, leaf_hash(a, va), ()))
    assert leaf_hash(a, va) != node_hash(a, va)


def test_non_inclusion_via_other_leaf_and_empty():
    a, va, b, vb, root = _two_leaf_tree()
    absent = b"\x00" + b"\x09" * 31  # shares bit 0 with a
    assert verify_non_inclusion(root, NonInclusionProof(absent, (leaf_hash(b, vb),), a, va))
    # claiming a itself is absent is refused
    assert not verify_non_inclusion(root, NonInclusionProof(a, (leaf_hash(b, vb),), a, va))
    assert verify_non_inclusion(EMPTY, NonInclusionProof(absent, ()))


def test_malformed_proofs_are_typed_errors():
    with pytest.raises(ProofError):
        InclusionProof.from_json({"key": "0x12", "value_hash": "0x" + "00" * 32, "siblings": []})
    with pytest.raises(ProofError):
        InclusionProof.from_json({"key": "0x" + "00" * 32, "value_hash": "0x" + "00" * 32, "siblings": ["0x" + "00" * 32] * 257})
    p = InclusionProof(b"\x00" * 32, b"\x00" * 32, (b"\x00" * 31,))
    assert not verify_inclusion(EMPTY, p)


def test_json_round_trip():
    a, va, b, vb, root = _two_leaf_tree()
    p = InclusionProof(a, va, (leaf_hash(b, vb),))
    assert InclusionProof.from_json(p.to_json()) == p
    n = NonInclusionProof(b"\x00" * 32, (leaf_hash(b, vb),), a, va)
    assert NonInclusionProof.from_json(n.to_json()) == n
