"""Parity: the Python verifier and the Vyper verifier (contracts/modules/state_proof.vy in py-evm, through
tests/harness/StateProofHarness.vy) agree on every proof and every tampering, and only untampered proofs verify.

Trees have 1 to 10,000 items with random or clustered keys (long shared prefixes). DDX_HYPOTHESIS_EXAMPLES
turns the number of trees up (default 40, sized for the 2.5-minute budget of tests/tree).
"""

import random
from pathlib import Path

import boa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddx_offchain.protocol import items
from ddx_offchain.protocol.hashing import EMPTY, leaf_hash, node_hash
from ddx_offchain.protocol.proof import InclusionProof, NonInclusionProof, key_bit, verify_inclusion, verify_non_inclusion
from ddx_offchain.tree import StateTree
from tree_strategies import EXAMPLES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def harness():
    return boa.load(str(REPO / "tests" / "harness" / "StateProofHarness.vy"))


def vyper_verifies(harness, root: bytes, proof: InclusionProof) -> bool:
    """What a contract comparing the folded root with its recorded root decides; a revert is a rejection."""
    try:
        return harness.root_of_inclusion(proof.key, proof.value_hash, list(proof.siblings)) == root
    except Exception:  # noqa: BLE001 - any revert (e.g. more siblings than the DynArray bound) rejects
        return False


def vyper_verifies_absence(harness, root: bytes, proof: NonInclusionProof) -> bool:
    """What `escape` decides for a pair without a BALANCE leaf: the absence fold reaches the root (a revert rejects)."""
    zero = bytes(32)
    try:
        other_key, other_value_hash = proof.other_key or zero, proof.other_value_hash or zero
        return harness.absence_root(proof.key, other_key, other_value_hash, list(proof.siblings)) == root
    except Exception:  # noqa: BLE001
        return False


def absence_tamperings(proof: NonInclusionProof, rnd: random.Random, tree: StateTree):
    """Non-inclusion proofs that must not verify: a present key, another path, a leaf off the path."""
    sibs = proof.siblings
    if sibs:
        i = rnd.randrange(len(sibs))
        yield "flipped sibling", NonInclusionProof(proof.key, sibs[:i] + (flip_bit(sibs[i], rnd.randrange(256)),) + sibs[i + 1 :], proof.other_key, proof.other_value_hash)
        yield "truncated", NonInclusionProof(proof.key, sibs[1:], proof.other_key, proof.other_value_hash)
    if proof.other_key is not None:
        yield "other leaf replaced by EMPTY", NonInclusionProof(proof.key, sibs)
        yield "other value altered", NonInclusionProof(proof.key, sibs, proof.other_key, flip_bit(proof.other_value_hash, 3))
        # the other leaf's own key claimed absent with its own leaf ending the path
        yield "present key", NonInclusionProof(proof.other_key, sibs, proof.other_key, proof.other_value_hash)
    else:
        yield "EMPTY replaced by a leaf", NonInclusionProof(proof.key, sibs, rnd.randbytes(32), rnd.randbytes(32))
    present = next(iter(tree.keys()))
    inclusion = tree.prove(present)
    yield "present key, EMPTY at its leaf", NonInclusionProof(present, inclusion.siblings)


def random_tree(seed: int, size: int, shared_bits: int) -> StateTree:
    """`size` items; with shared_bits > 0, half the keys share that many leading bits (deep, narrow paths)."""
    rnd = random.Random(seed)
    base = rnd.getrandbits(256)
    values = {}
    while len(values) < size:
        k = rnd.getrandbits(256)
        if shared_bits and rnd.random() < 0.5:
            low_bits = 256 - shared_bits
            k = (base >> low_bits << low_bits) | (k & ((1 << low_bits) - 1))
        values[k.to_bytes(32, "big")] = rnd.randbytes(rnd.randint(0, 64))
    return StateTree.from_items(values)


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(out)


def tamperings(proof: InclusionProof, rnd: random.Random, other_tree_root: bytes, root: bytes):
    """(name, proof, root) for every kind of tampering the issue lists; none of them may verify."""
    k, vh, sibs = proof.key, proof.value_hash, proof.siblings
    if sibs:
        i = rnd.randrange(len(sibs))
        yield "flipped sibling", InclusionProof(k, vh, sibs[:i] + (flip_bit(sibs[i], rnd.randrange(256)),) + sibs[i + 1 :]), root
        yield "swapped sibling", InclusionProof(k, vh, sibs[:i] + (rnd.randbytes(32),) + sibs[i + 1 :]), root
        yield "truncated at the root end", InclusionProof(k, vh, sibs[:-1]), root
        yield "truncated at the leaf end", InclusionProof(k, vh, sibs[1:]), root
        # An internal node presented as a leaf: its two children posing as (key, value_hash).
        own_leaf = leaf_hash(k, vh)
        d = len(sibs)
        children = (sibs[0], own_leaf) if key_bit(k, d - 1) else (own_leaf, sibs[0])
        yield "internal node as leaf", InclusionProof(children[0], children[1], sibs[1:]), root
        yield "internal node as leaf, own key", InclusionProof(k, node_hash(*children), sibs[1:]), root
    yield "wrong key bit", InclusionProof(flip_bit(k, rnd.randrange(8, 256)), vh, sibs), root
    yield "wrong key", InclusionProof(rnd.randbytes(32), vh, sibs), root
    yield "wrong kind", InclusionProof(bytes([k[0] ^ rnd.randrange(1, 256)]) + k[1:], vh, sibs), root
    yield "wrong value", InclusionProof(k, flip_bit(vh, rnd.randrange(256)), sibs), root
    yield "extended with EMPTY", InclusionProof(k, vh, sibs + (EMPTY,)), root
    yield "extended at the leaf end", InclusionProof(k, vh, (rnd.randbytes(32),) + sibs), root
    if other_tree_root != root:
        yield "wrong root", proof, other_tree_root


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    size=st.one_of(st.integers(1, 40), st.integers(1, 10_000)),
    shared_bits=st.sampled_from([0, 0, 16, 120, 250]),
    proofs=st.integers(1, 4),
)
def test_python_and_vyper_agree_on_proofs_and_tamperings(harness, seed, size, shared_bits, proofs):
    tree = random_tree(seed, size, shared_bits)
    root = tree.root()
    rnd = random.Random(seed ^ 0x5EED)
    keys = list(tree.keys())
    other_root = random_tree(seed + 1, size, shared_bits).root()
    for _ in range(proofs):
        key = keys[rnd.randrange(len(keys))]
        proof = tree.prove(key)
        assert verify_inclusion(root, proof)
        assert vyper_verifies(harness, root, proof)
        for name, tampered, against in tamperings(proof, rnd, other_root, root):
            python = verify_inclusion(against, tampered)
            vyper = vyper_verifies(harness, against, tampered)
            assert python == vyper, f"{name}: python {python}, vyper {vyper}"
            assert not python, f"tampered proof verified: {name}"
        # a non-inclusion proof presented as an inclusion proof of the absent key
        absent = rnd.randbytes(32)
        if absent not in tree:
            non = tree.prove_absent(absent)
            claimed = InclusionProof(absent, non.other_value_hash or EMPTY, non.siblings)
            assert not verify_inclusion(root, claimed)
            assert not vyper_verifies(harness, root, claimed)
            # and both verifiers accept the non-inclusion proof itself (escape's proof for a pair with no leaf)
            assert verify_non_inclusion(root, non)
            assert vyper_verifies_absence(harness, root, non)
            for name, tampered in absence_tamperings(non, rnd, tree):
                python = verify_non_inclusion(root, tampered)
                vyper = vyper_verifies_absence(harness, root, tampered)
                assert python == vyper, f"{name}: python {python}, vyper {vyper}"
                assert not python, f"tampered absence proof verified: {name}"


def test_more_than_256_siblings_is_rejected_by_both(harness):
    a, b = b"\x55" * 31 + b"\x00", b"\x55" * 31 + b"\x01"
    tree = StateTree.from_items({a: b"a", b: b"b"})
    proof = tree.prove(a)
    assert len(proof.siblings) == 256 and vyper_verifies(harness, tree.root(), proof)
    too_long = InclusionProof(a, proof.value_hash, proof.siblings + (EMPTY,))
    assert not verify_inclusion(tree.root(), too_long)
    assert not vyper_verifies(harness, tree.root(), too_long)


def test_withdrawal_and_balance_items_verify_in_vyper_only_as_their_own_kind(harness):
    rnd = random.Random(11)
    trader, token = "0x" + "ab" * 20, "0x" + "cd" * 20
    values = {rnd.randbytes(32): rnd.randbytes(32) for _ in range(500)}
    values[items.withdrawal_key(trader, token)] = items.withdrawal_value(trader, token, 10**18)
    values[items.balance_key(trader, token)] = items.balance_value(trader, token, 7 * 10**6, 9 * 10**6)
    tree = StateTree.from_items(values)
    root = tree.root()
    assert harness.item_key(items.Kind.WITHDRAWAL, trader, token) == items.withdrawal_key(trader, token)
    withdrawal = list(tree.prove(items.withdrawal_key(trader, token)).siblings)
    balance = list(tree.prove(items.balance_key(trader, token)).siblings)
    assert harness.withdrawal_root(trader, token, 10**18, withdrawal) == root
    assert harness.withdrawal_root(trader, token, 10**18 + 1, withdrawal) != root
    assert harness.balance_root(trader, token, 7 * 10**6, 9 * 10**6, balance) == root
    assert harness.balance_root(trader, token, 7 * 10**6, 9 * 10**6 - 1, balance) != root  # deposited is proven too
    # wrong kind: the withdrawal leaf's proof does not prove a balance of the same amount, nor the reverse
    assert harness.balance_root(trader, token, 10**18, 0, withdrawal) != root
    assert harness.withdrawal_root(trader, token, 7 * 10**6, balance) != root
