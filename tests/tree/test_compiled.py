"""Differential test: the compiled kernels and the pure-Python reference drive the same tree code (nodes.py) to the
same roots, proofs, stored layout and snapshot bytes after every step of random update sequences.

Both implementations run in this one process (a tree takes its kernel set as an argument), so this test covers
both builds whatever DDX_PURE_PYTHON says. Skipped without the compiled extension unless DDX_REQUIRE_COMPILED=1.
"""

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_spec_model import stored_layout
from tree_strategies import EXAMPLES, key_sets

from ddx_offchain.protocol.proof import verify_inclusion, verify_non_inclusion
from ddx_offchain.tree import StateTree, decode_snapshot, encode_snapshot, kernels

if kernels.COMPILED is None:
    if os.environ.get("DDX_REQUIRE_COMPILED", "") not in ("", "0"):
        raise RuntimeError("DDX_REQUIRE_COMPILED=1 but ddx_offchain.tree._native is not built")
    pytest.skip("compiled tree kernels not built", allow_module_level=True)

PURE, COMPILED = kernels.PURE, kernels.COMPILED


@pytest.fixture(autouse=True, scope="module", params=["eight-way keccak", "one keccak at a time"])
def keccak_path(request):
    """multi_path hashes its batch with the eight-way AVX-512 permutation where the CPU has it, one permutation at
    a time elsewhere: every test here runs both ways (the second on any machine)."""
    from ddx_offchain.tree import _native

    wanted = request.param == "eight-way keccak"
    if _native.set_vector_keccak(wanted) != wanted:
        pytest.skip("this CPU has no AVX-512")
    yield
    _native.set_vector_keccak(True)


def _same(pure: StateTree, compiled: StateTree, rnd: random.Random, absent_pool: list[bytes]) -> None:
    root = pure.root()
    assert compiled.root() == root
    assert stored_layout(compiled) == stored_layout(pure)
    present = sorted(pure._items)
    assert sorted(compiled._items) == present
    for key in rnd.sample(present, min(3, len(present))):
        proof = pure.prove(key)
        assert compiled.prove(key) == proof
        assert verify_inclusion(root, proof)
    for key in absent_pool[:3]:
        if key not in pure:
            proof = pure.prove_absent(key)
            assert compiled.prove_absent(key) == proof
            assert verify_non_inclusion(root, proof)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    key_sets(max_size=40),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.binary(max_size=90)), max_size=120),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_random_update_sequences_give_identical_roots_and_proofs(keys, steps, keep_values, rnd):
    pool = sorted(keys)
    start = {k: rnd.randbytes(rnd.randint(0, 40)) for k in pool[: len(pool) // 2]}
    pure = StateTree.from_items(start, keep_values=keep_values, kernels=PURE)
    compiled = StateTree.from_items(start, keep_values=keep_values, kernels=COMPILED)
    assert pure.kernels is PURE and compiled.kernels is COMPILED
    absent_pool = [k for k in pool if k not in start]
    _same(pure, compiled, rnd, absent_pool)
    for i, (kind, pick, value) in enumerate(steps):
        key = pool[pick % len(pool)]
        if kind == 2 and key in pure:
            pure.delete(key)
            compiled.delete(key)
        else:
            pure.put(key, value)
            compiled.put(key, value)
        if i % 3 == 0 or kind == 2:  # re-hash after most steps, sometimes after a small batch
            _same(pure, compiled, rnd, [k for k in pool if k not in pure])
    _same(pure, compiled, rnd, [k for k in pool if k not in pure])
    data = encode_snapshot(pure)
    assert encode_snapshot(compiled) == data
    assert decode_snapshot(data).root() == compiled.root()


@pytest.mark.parametrize("keep_values", [True, False])
def test_large_random_batches_agree(keep_values):
    """Batches the size the engine makes (hundreds of changed items) in a tree of thousands, with inserts and
    deletes that split and collapse chains."""
    rnd = random.Random(11)
    items = {bytes([rnd.randrange(1, 14)]) + rnd.randbytes(31): rnd.randbytes(64) for _ in range(5_000)}
    pure = StateTree.from_items(items, keep_values=keep_values, kernels=PURE)
    compiled = StateTree.from_items(items, keep_values=keep_values, kernels=COMPILED)
    keys = list(items)
    for _ in range(6):
        for _ in range(600):
            r = rnd.random()
            if r < 0.7:
                key, value = keys[rnd.randrange(len(keys))], rnd.randbytes(64)
            elif r < 0.85:
                key, value = bytes([rnd.randrange(1, 14)]) + rnd.randbytes(31), rnd.randbytes(64)
                keys.append(key)
            else:
                key = keys.pop(rnd.randrange(len(keys)))
                if key in pure:
                    pure.delete(key)
                    compiled.delete(key)
                continue
            pure.put(key, value)
            compiled.put(key, value)
        _same(pure, compiled, rnd, [bytes([rnd.randrange(1, 14)]) + rnd.randbytes(31) for _ in range(3)])


def test_value_updates_of_every_length_agree_through_multi_path():
    """Batches of value updates only (the whole batch is one multi_path call) with values from empty to several
    136-byte blocks: the one-block values are hashed in the eight-way batch, longer ones during the walk."""
    import dataclasses

    calls = {"done": 0}

    def counted(*args):
        result = COMPILED.multi_path(*args)
        calls["done"] += result is not None
        return result

    rnd = random.Random(17)
    lengths = list(range(0, 140)) + [200, 271, 272, 273, 500]
    items = {rnd.randbytes(32): rnd.randbytes(rnd.choice(lengths)) for _ in range(3_000)}
    pure = StateTree.from_items(items, kernels=PURE)
    compiled = StateTree.from_items(items, kernels=dataclasses.replace(COMPILED, multi_path=counted))
    keys = list(items)
    for _ in range(4):
        for key in rnd.sample(keys, 400):
            value = rnd.randbytes(rnd.choice(lengths))
            pure.put(key, value)
            compiled.put(key, value)
        _same(pure, compiled, rnd, [rnd.randbytes(32)])
    assert calls["done"] == 4


def test_a_batch_of_value_updates_handed_back_whole_is_split_by_the_python_walk():
    """A batch of value updates only goes to multi_path whole first; keys sharing 160 bits (positions past 64 bits)
    make it hand the batch back, and the Python walk then hands multi_path the ranges it can take."""
    import dataclasses

    outcomes = {"done": 0, "handed_back": 0, "whole": 0}

    def counted(*args):
        result = COMPILED.multi_path(*args)
        outcomes["done" if result is not None else "handed_back"] += 1
        outcomes["whole"] += args[5] == 0 and args[6] == len(args[4])
        return result

    rnd = random.Random(23)
    base = rnd.randbytes(32)
    deep = [base[:20] + rnd.randbytes(12) for _ in range(20)]
    items = {k: rnd.randbytes(40) for k in deep}
    items.update({rnd.randbytes(32): rnd.randbytes(40) for _ in range(2_000)})
    pure = StateTree.from_items(items, kernels=PURE)
    compiled = StateTree.from_items(items, kernels=dataclasses.replace(COMPILED, multi_path=counted))
    keys = list(items)
    for _ in range(3):
        for key in rnd.sample(keys, 300) + deep[:5]:
            value = rnd.randbytes(40)
            pure.put(key, value)
            compiled.put(key, value)
        _same(pure, compiled, rnd, [rnd.randbytes(32)])
    assert outcomes["whole"] >= 3 and outcomes["handed_back"] >= 3 and outcomes["done"] >= 3, outcomes


def test_the_compiled_loops_run_and_hand_structural_changes_back():
    """single_path and multi_path take the value updates and return None for the rest (inserts that split,
    deletes that collapse, positions deeper than 62 bits): both outcomes occur here and the trees still agree."""
    import dataclasses

    outcomes = {"single_done": 0, "single_handed_back": 0, "multi_done": 0, "multi_handed_back": 0}

    def counting(name, fn):
        def counted(*args):
            result = fn(*args)
            outcomes[f"{name}_done" if result is not None else f"{name}_handed_back"] += 1
            return result

        return counted

    counted = dataclasses.replace(
        COMPILED,
        single_path=counting("single", COMPILED.single_path),
        multi_path=counting("multi", COMPILED.multi_path),
    )
    rnd = random.Random(5)
    base = rnd.randbytes(32)
    deep = [base[:20] + rnd.randbytes(12) for _ in range(50)]  # 160 shared bits: positions past 64 bits
    items = {k: rnd.randbytes(20) for k in deep}
    items.update({rnd.randbytes(32): rnd.randbytes(20) for _ in range(2_000)})
    pure = StateTree.from_items(items, kernels=PURE)
    compiled = StateTree.from_items(items, kernels=counted)
    keys = list(items)
    for _ in range(5):
        for _ in range(300):
            key = keys[rnd.randrange(len(keys))] if rnd.random() < 0.8 else rnd.randbytes(32)
            if rnd.random() < 0.1 and key in pure:
                pure.delete(key)
                compiled.delete(key)
            else:
                value = rnd.randbytes(20)
                pure.put(key, value)
                compiled.put(key, value)
                keys.append(key)
        _same(pure, compiled, rnd, [rnd.randbytes(32)])
    assert all(count > 5 for count in outcomes.values()), outcomes


@pytest.mark.parametrize("keep_values", [True, False])
def test_inserts_and_deletes_through_the_compiled_loop_keep_the_same_layout(keep_values):
    """Batches of only inserts and deletes (leaves split by a new key, nodes collapsed by a removed one): most of
    them run in single_path now; roots and the exact stored layout must still match the reference."""
    import dataclasses

    outcomes = {"done": 0, "handed_back": 0}

    def counting(*args):
        result = COMPILED.single_path(*args)
        outcomes["done" if result is not None else "handed_back"] += 1
        return result

    rnd = random.Random(13)
    items = {rnd.randbytes(32): rnd.randbytes(30) for _ in range(3_000)}
    pure = StateTree.from_items(items, keep_values=keep_values, kernels=PURE)
    compiled = StateTree.from_items(
        items, keep_values=keep_values, kernels=dataclasses.replace(COMPILED, single_path=counting)
    )
    keys = list(items)
    for _ in range(15):
        for _ in range(40):
            if rnd.random() < 0.5:
                key, value = rnd.randbytes(32), rnd.randbytes(30)
                pure.put(key, value)
                compiled.put(key, value)
                keys.append(key)
            else:
                key = keys.pop(rnd.randrange(len(keys)))
                pure.delete(key)
                compiled.delete(key)
        _same(pure, compiled, rnd, [rnd.randbytes(32)])
    assert outcomes["done"] > 400, outcomes
