"""The worked example of docs/protocol.md §4.1 and §8, byte for byte, in the tree and both verifiers."""

from pathlib import Path

import boa
import pytest

from ddx_offchain.protocol import items
from ddx_offchain.protocol.hashing import EMPTY, keccak256, leaf_hash
from ddx_offchain.protocol.proof import InclusionProof, NonInclusionProof, verify_inclusion, verify_non_inclusion
from ddx_offchain.tree import StateTree, encode_snapshot

T, A, B = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
ROOT = "1fd83e77ed5e491360acfd90f0ed6a75363b629df68e83e86c8fcc91e5f47086"
X = "94474f912667e420a7ce7032d1eaaa233ad03ee8d7db5e8a105ae66660acd16b"
ITEMS = [  # (key, value, value_hash, leaf_hash) as in the §4.1 table
    (
        items.withdrawal_key(T, A),
        items.withdrawal_value(T, A, 1000),
        "0765c8baaf682122865866dc2d043501f7cd767a94174740175240f99dfa3990",
        "cecd7ed5688a5e34e5dca2bb8e9e505aaa9139a30a54495794c46e2d19a474e3",
        "550af6c4e54b6fabaa18025876b24101d66b17fcafcaa8248ecb4d6da7b11a70",
    ),
    (
        items.withdrawal_key(T, B),
        items.withdrawal_value(T, B, 7),
        "07dd2198208b0863cde36ad9263ded2f758eec1c482415ce2dbd6337a3da3bb4",
        "b1d9dd5b1a4ebc09df2f1143b2912c15f440a3c79486398296c85c432417f2e2",
        "b815d9904c309c1f0780eb045c131be2fc3b81aa8833bcb587c1e8e1625e4fd4",
    ),
    (
        items.balance_key(T, A),
        items.balance_value(T, A, 500, 1500),
        "087434ab7cd3e3542d9ce5dd10e0c4747efbdca7803c5122db9f5015a46b91ba",
        "dc2c2bc2bcb67a3f82203756bc080b41d1c9b9f4e41a89140154d0101f7a7c24",
        "5e358a88c72106a7daeb791263c8a70d71206c18a1bbf214976896d5532c40cb",
    ),
]
Z = EMPTY.hex()
PROOFS = {
    ITEMS[0][2]: [ITEMS[1][4], Z, Z, Z, ITEMS[2][4], Z, Z, Z, Z],
    ITEMS[1][2]: [ITEMS[0][4], Z, Z, Z, ITEMS[2][4], Z, Z, Z, Z],
    ITEMS[2][2]: [X, Z, Z, Z, Z],
}
ABSENT = "08712e7f1f63c3a62129f2e39031addef7b0ce17c8a9464fae340b8adbc81eef"
SNAPSHOT_HEAD = "4444585452454500" "0001" "0001" "00000000" "0000000000000003" + ROOT
SNAPSHOT_CHECKSUM = "d255cd3fade872bb16a961df84bcd009dc0225e856dfbfea757150cb7c938944"


@pytest.fixture(scope="module")
def tree() -> StateTree:
    return StateTree.from_items({key: value for key, value, *_ in ITEMS})


def test_keys_hashes_and_leaves(tree):
    for key, value, key_hex, value_hash_hex, leaf_hex in ITEMS:
        assert key.hex() == key_hex
        assert keccak256(value).hex() == value_hash_hex == tree.value_hash(key).hex()
        assert leaf_hash(key, keccak256(value)).hex() == leaf_hex


def test_root_and_inclusion_proofs_in_python_and_vyper(tree):
    assert tree.root().hex() == ROOT
    harness = boa.load(str(Path(__file__).resolve().parents[2] / "tests" / "harness" / "StateProofHarness.vy"))
    for key, value, key_hex, value_hash_hex, _ in ITEMS:
        proof = tree.prove(key)
        assert [s.hex() for s in proof.siblings] == PROOFS[key_hex]
        assert verify_inclusion(bytes.fromhex(ROOT), InclusionProof.from_json(proof.to_json()))
        assert harness.root_of_inclusion(key, bytes.fromhex(value_hash_hex), list(proof.siblings)).hex() == ROOT
    withdrawal = tree.prove(ITEMS[0][0])
    assert harness.withdrawal_root(T, A, 1000, list(withdrawal.siblings)).hex() == ROOT
    balance = tree.prove(ITEMS[2][0])
    assert harness.balance_root(T, A, 500, 1500, list(balance.siblings)).hex() == ROOT


def test_non_inclusion_vector(tree):
    absent = items.balance_key(T, B)
    assert absent.hex() == ABSENT
    proof = tree.prove_absent(absent)
    assert proof == NonInclusionProof(
        key=absent,
        siblings=(bytes.fromhex(X),) + (EMPTY,) * 4,
        other_key=ITEMS[2][0],
        other_value_hash=bytes.fromhex(ITEMS[2][3]),
    )
    assert verify_non_inclusion(bytes.fromhex(ROOT), proof)
    harness = boa.load(str(Path(__file__).resolve().parents[2] / "tests" / "harness" / "StateProofHarness.vy"))
    assert harness.absence_root(absent, proof.other_key, proof.other_value_hash, list(proof.siblings)).hex() == ROOT


def test_snapshot_bytes(tree):
    data = encode_snapshot(tree)
    expected = bytes.fromhex(SNAPSHOT_HEAD)
    for key, value, *_ in ITEMS:
        expected += key + len(value).to_bytes(4, "big") + value
    assert data == expected + bytes.fromhex(SNAPSHOT_CHECKSUM)
