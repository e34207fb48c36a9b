"""StateTree against the spec oracle: roots, incremental re-hashing, proofs, typed errors."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.protocol.hashing import EMPTY, keccak256, leaf_hash
from ddx_offchain.protocol.proof import common_prefix_bits, verify_inclusion, verify_non_inclusion
from ddx_offchain.tree import (
    MAX_VALUE_BYTES,
    InvalidItem,
    ItemNotFound,
    ItemPresent,
    StateTree,
    TreeError,
    ValuesNotKept,
)
from tree_spec_model import spec_layout, spec_root_of_values, stored_layout
from tree_strategies import EXAMPLES, key_sets, operations


def _key(byte0: int, rest: int = 0) -> bytes:
    return bytes([byte0]) + rest.to_bytes(31, "big")


def test_empty_tree_root_is_empty():
    assert StateTree().root() == EMPTY
    assert len(StateTree()) == 0


def test_one_item_root_is_its_leaf():
    t = StateTree()
    t.put(_key(7), b"v")
    assert t.root() == leaf_hash(_key(7), keccak256(b"v"))


def test_two_items_differing_in_the_last_bit_make_a_256_deep_path():
    a, b = b"\x55" * 31 + b"\x00", b"\x55" * 31 + b"\x01"
    t = StateTree.from_items({a: b"a", b: b"b"})
    proof = t.prove(a)
    assert len(proof.siblings) == 256
    assert proof.siblings[0] == leaf_hash(b, keccak256(b"b"))
    assert all(s == EMPTY for s in proof.siblings[1:])
    assert verify_inclusion(t.root(), proof)
    assert t.root() == spec_root_of_values({a: b"a", b: b"b"})


@settings(max_examples=EXAMPLES, deadline=None)
@given(key_sets(max_size=60), st.randoms(use_true_random=False))
def test_root_matches_spec_and_ignores_insertion_order(keys, rnd):
    values = {k: rnd.randbytes(rnd.randint(0, 70)) for k in keys}
    expected = spec_root_of_values(values)
    assert StateTree.from_items(values).root() == expected
    order = list(values)
    rnd.shuffle(order)
    t = StateTree()
    for k in order:
        t.put(k, values[k])
    assert t.root() == expected
    assert len(t) == len(values)


@settings(max_examples=EXAMPLES, deadline=None)
@given(operations())
def test_incremental_root_equals_spec_after_any_mix_of_puts_and_deletes(ops):
    t = StateTree()
    model: dict[bytes, bytes] = {}
    for op, key, value, check in ops:
        if op == "put":
            t.put(key, value)
            model[key] = value
        elif key in model:
            t.delete(key)
            del model[key]
        if check:  # re-hash mid-sequence too, so batches of every size are exercised
            assert t.root() == spec_root_of_values(model)
    assert t.root() == spec_root_of_values(model)
    assert t.root() == StateTree.from_items(model).root()
    assert stored_layout(t) == spec_layout(model)  # no stale or missing node after any batch
    assert dict(t.items()) == model
    assert list(t.keys()) == sorted(model)
    for key in model:
        assert t.get(key) == model[key]
        assert verify_inclusion(t.root(), t.prove(key))


@settings(max_examples=EXAMPLES, deadline=None)
@given(key_sets(max_size=40), st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=10))
def test_non_inclusion_proofs_verify_and_name_the_leaf_on_the_path(keys, probes):
    t = StateTree.from_items({k: k[:5] for k in keys})
    root = t.root()
    for probe in probes + [bytes(k[:31]) + bytes([k[31] ^ 1]) for k in list(keys)[:5]]:
        if probe in t:
            with pytest.raises(ItemPresent):
                t.prove_absent(probe)
            continue
        proof = t.prove_absent(probe)
        assert verify_non_inclusion(root, proof)
        if proof.other_key is not None:
            assert proof.other_key in t
            assert common_prefix_bits(probe, proof.other_key) >= len(proof.siblings)


def test_deleting_everything_returns_to_the_empty_root():
    rnd = random.Random(3)
    items = {rnd.randbytes(32): rnd.randbytes(8) for _ in range(300)}
    t = StateTree.from_items(items)
    for k in list(items)[::2]:
        t.delete(k)
    t.root()
    for k in list(items)[1::2]:
        t.delete(k)
    assert t.root() == EMPTY
    assert len(t) == 0 and stored_layout(t) == ({}, {})  # no stale internal nodes survive


def test_putting_an_unchanged_value_keeps_the_root_and_no_work_pending():
    t = StateTree.from_items({_key(1): b"x", _key(2): b"y"})
    before = t.root()
    t.put(_key(1), b"x")
    assert not t._pending
    assert t.root() == before


def test_overwrite_then_delete_in_one_batch():
    t = StateTree.from_items({_key(1): b"x", _key(2): b"y", _key(3): b"z"})
    t.put(_key(2), b"changed")
    t.delete(_key(2))
    t.put(_key(9), b"new")
    t.delete(_key(9))
    assert t.root() == spec_root_of_values({_key(1): b"x", _key(3): b"z"})


@pytest.mark.parametrize(
    "key, value",
    [
        (b"\x01" * 31, b"v"),  # short key
        (b"\x01" * 33, b"v"),  # long key
        ("0x" + "01" * 32, b"v"),  # hex string, not bytes
        (b"\x01" * 32, "v"),  # str value
        (b"\x01" * 32, b"v" * (MAX_VALUE_BYTES + 1)),  # oversized value
    ],
)
def test_bad_input_is_a_typed_error_and_changes_nothing(key, value):
    t = StateTree.from_items({_key(1): b"x"})
    before = t.root()
    with pytest.raises(InvalidItem):
        t.put(key, value)
    assert t.root() == before and len(t) == 1 and not t._pending


def test_absent_items_are_typed_errors():
    t = StateTree.from_items({_key(1): b"x"})
    with pytest.raises(ItemNotFound):
        t.delete(_key(2))
    with pytest.raises(ItemNotFound):
        t.prove(_key(2))
    with pytest.raises(ItemPresent):
        t.prove_absent(_key(1))
    assert t.get(_key(2)) is None and t.value_hash(_key(2)) is None
    assert issubclass(ItemNotFound, TreeError) and issubclass(ItemNotFound, KeyError)


def test_hash_only_tree_has_the_same_root_but_no_values():
    items = {_key(1): b"x", _key(2, 5): b"y"}
    t = StateTree.from_items(items, keep_values=False)
    assert t.root() == StateTree.from_items(items).root()
    assert t.value_hash(_key(1)) == keccak256(b"x")
    with pytest.raises(ValuesNotKept):
        t.get(_key(1))
    with pytest.raises(ValuesNotKept):
        list(t.items())


def test_proofs_track_updates():
    t = StateTree.from_items({_key(1): b"x", _key(2): b"y"})
    old_root, old_proof = t.root(), t.prove(_key(1))
    t.put(_key(1), b"x2")
    assert not verify_inclusion(t.root(), old_proof)
    assert verify_inclusion(old_root, old_proof)
    assert t.prove(_key(1)).value_hash == keccak256(b"x2")


def test_deepest_shapes_rehash_without_hitting_the_recursion_limit():
    # A comb: key i has its first 1 bit at position i, so every level of the trie branches.
    comb = {(1 << (255 - i)).to_bytes(32, "big"): bytes([i]) for i in range(256)}
    t = StateTree.from_items(comb)
    assert t.root() == spec_root_of_values(comb)
    for key in list(comb)[::3]:
        t.put(key, b"changed")
        comb[key] = b"changed"
    assert t.root() == spec_root_of_values(comb)
    # A 255-level chain from the root, then keys leaving it at every level in one batch.
    a, b = b"\xff" * 31 + b"\xfe", b"\xff" * 32
    t = StateTree.from_items({a: b"a", b: b"b"})
    model = {a: b"a", b: b"b"}
    for i in range(255):
        key = (int.from_bytes(b, "big") ^ (1 << i)).to_bytes(32, "big")
        t.put(key, b"x")
        model[key] = b"x"
    assert t.root() == spec_root_of_values(model)
    assert stored_layout(t) == spec_layout(model)
    for key in list(model)[::2]:
        t.delete(key)
        del model[key]
    assert t.root() == spec_root_of_values(model)
    assert stored_layout(t) == spec_layout(model)


@pytest.mark.parametrize("seed", range(max(1, EXAMPLES // 10)))
def test_random_batches_over_clustered_kind_prefixed_keys(seed):
    """Batches of puts and deletes over keys in a few clusters (shared prefixes of 0-256 bits, some with a kind
    byte): after every batch the root, the stored layout and every proof match the spec."""
    rnd = random.Random(seed)
    bases = [rnd.getrandbits(256) for _ in range(3)]

    def key() -> bytes:
        base, shared = rnd.choice(bases), rnd.choice([0, 4, 8, 30, 100, 200, 250, 255, 256])
        low = 256 - shared
        k = (base >> low << low) | (rnd.getrandbits(256) & ((1 << low) - 1))
        if rnd.random() < 0.3:
            k = (rnd.randrange(1, 14) << 248) | (k & ((1 << 248) - 1))
        return k.to_bytes(32, "big")

    for _ in range(6):
        pool = list({key() for _ in range(rnd.randint(2, 120))})
        t, model = StateTree(), {}
        for _ in range(rnd.randint(1, 6)):
            for _ in range(rnd.randint(1, 60)):
                k = rnd.choice(pool)
                if rnd.random() < 0.6:
                    model[k] = rnd.randbytes(5)
                    t.put(k, model[k])
                elif k in model:
                    t.delete(k)
                    del model[k]
            root = t.root()
            assert root == spec_root_of_values(model)
            assert stored_layout(t) == spec_layout(model)
            for k in pool[:20] + [key() for _ in range(5)]:
                if k in model:
                    assert verify_inclusion(root, t.prove(k))
                else:
                    assert verify_non_inclusion(root, t.prove_absent(k))


def test_bytes_like_keys_and_values_are_stored_as_plain_bytes():
    class HexLike(bytes):  # like web3's HexBytes, whose hex() differs
        def hex(self):
            return "0x" + super().hex()

    t = StateTree()
    t.put(HexLike(_key(5)), bytearray(b"v"))
    t.put(memoryview(_key(6)), HexLike(b"w"))
    assert all(type(k) is bytes for k in t.keys()) and all(type(v) is bytes for _, v in t.items())
    proof = t.prove(_key(5))
    assert type(proof.key) is bytes and proof.to_json()["key"] == "0x" + _key(5).hex()
    assert t.root() == spec_root_of_values({_key(5): b"v", _key(6): b"w"})


@settings(max_examples=EXAMPLES, deadline=None)
@given(key_sets(min_size=2, max_size=60), st.randoms(use_true_random=False), st.booleans())
def test_value_updates_rehash_like_the_spec_whether_values_or_hashes_are_kept(keys, rnd, keep_values):
    """The re-hash's inline paths (a leaf's new value, a sibling leaf's hash) read the value hash from the item map
    both ways: keccak of the kept value, or the stored hash itself. Batches of updates, with a few inserts and
    deletes mixed in, of one key up to every key."""
    model = {k: rnd.randbytes(rnd.randint(0, 40)) for k in keys}
    t = StateTree.from_items(model, keep_values=keep_values)
    pool = sorted(model)
    for _ in range(4):
        for k in rnd.sample(pool, rnd.randint(1, len(pool))):
            if rnd.random() < 0.8 or k not in model:
                model[k] = rnd.randbytes(rnd.randint(0, 40))
                t.put(k, model[k])
            else:
                t.delete(k)
                del model[k]
        assert t.root() == spec_root_of_values(model)
        assert stored_layout(t) == spec_layout(model)

