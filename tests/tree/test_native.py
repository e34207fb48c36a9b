"""The compiled kernels (ddx_offchain/tree/_native.c) against standard vectors and their pure-Python twins.

Skipped when the extension was not built (no compiler at install time), unless DDX_REQUIRE_COMPILED=1 (set by
`make test`, whose install builds it): then a missing extension fails instead of hiding.
"""

import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tree_strategies import EXAMPLES

from ddx_offchain.protocol.hashing import keccak256, leaf_hash, node_hash
from ddx_offchain.tree import kernels

if kernels.COMPILED is None:
    if os.environ.get("DDX_REQUIRE_COMPILED", "") not in ("", "0"):
        raise RuntimeError("DDX_REQUIRE_COMPILED=1 but ddx_offchain.tree._native is not built")
    pytest.skip("compiled tree kernels not built", allow_module_level=True)

from ddx_offchain.tree import _native  # noqa: E402

# Keccak-256 as Ethereum uses it (the original Keccak padding), from the Keccak team's submission vectors and
# Ethereum's well-known constants.
KECCAK256_VECTORS = {
    b"": "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
    b"abc": "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
    b"The quick brown fox jumps over the lazy dog": "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15",
    b"testing": "5f16f4c7f149ac4f9510d9cf8cf384038ad348b3bcdc01915f95de12df9d1b02",
}
# FIPS 202 SHA3-256 (same permutation, other padding): NIST's examples.
SHA3_256_VECTORS = {
    b"": "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
    b"abc": "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
    b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq": (
        "41c0dba2a9d6240849100376a8235e2c82e1b9998a999e21db32dd97496d3376"
    ),
    b"a" * 1_000_000: "5c8875ae474a3634ba4fd55ec85bffd661f32aca75c6d699d0cdcb6c115891c1",
}


@pytest.mark.parametrize("message", list(KECCAK256_VECTORS))
def test_keccak256_vectors(message):
    assert _native.keccak256(message).hex() == KECCAK256_VECTORS[message]


@pytest.mark.parametrize("message", list(SHA3_256_VECTORS), ids=lambda m: f"{len(m)}B")
def test_the_permutation_gives_fips202_sha3_256(message):
    assert _native.sha3_256(message).hex() == SHA3_256_VECTORS[message]


def test_every_length_across_block_boundaries_matches_hashlib_and_the_keccak_wheels():
    """Lengths 0..600 cover 0-4 full 136-byte blocks and every padding position."""
    rnd = random.Random(7)
    others = [keccak256]
    try:
        from sha3 import keccak_256

        others.append(lambda d: keccak_256(d).digest())
    except ImportError:  # pragma: no cover
        pass
    for n in range(601):
        data = rnd.randbytes(n)
        assert _native.sha3_256(data) == hashlib.sha3_256(data).digest(), n
        expected = _native.keccak256(data)
        for other in others:
            assert other(data) == expected, n
        assert _native.keccak256(bytearray(data)) == expected
        assert _native.keccak256(memoryview(data)) == expected


def _cpu_has_avx512f() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:  # pragma: no cover - not Linux
        return False


@pytest.mark.parametrize("vector", [True, False], ids=["eight-way", "one-at-a-time"])
def test_keccak256_many_matches_keccak256_for_every_length_and_group_size(vector):
    """The batch path multi_path hashes with: every single-block length (0-135, each padding position), longer
    inputs mixed in (hashed one by one), and batch sizes that leave 0-7 instances of the last group unused."""
    in_use = _native.set_vector_keccak(vector)
    try:
        if vector and not in_use:
            pytest.skip("this CPU has no AVX-512")
        assert in_use is vector
        rnd = random.Random(3)
        messages = [rnd.randbytes(n) for n in range(136)] + [rnd.randbytes(n) for n in (136, 200, 271, 272, 600)]
        rnd.shuffle(messages)
        expected = [keccak256(m) for m in messages]
        for count in list(range(18)) + [len(messages)]:
            assert _native.keccak256_many(messages[:count]) == expected[:count], count
        assert _native.keccak256_many((b"abc",)) == [bytes.fromhex(KECCAK256_VECTORS[b"abc"])]
        with pytest.raises(TypeError):
            _native.keccak256_many([b"abc", "abc"])
        with pytest.raises(TypeError):
            _native.keccak256_many(5)
    finally:
        _native.set_vector_keccak(True)


def test_the_eight_way_permutation_is_used_where_the_cpu_has_it():
    assert _native.set_vector_keccak(True) is _cpu_has_avx512f()


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_tree_hashes_equal_the_protocol_definitions(a, b, value):
    assert _native.node_hash(a, b) == node_hash(a, b)
    assert _native.leaf_hash(a, b) == leaf_hash(a, b)
    assert _native.value_leaf_hash(a, value) == leaf_hash(a, keccak256(value))
    for pure, compiled in ((kernels.PURE, kernels.COMPILED),):
        assert pure.node_hash(a, b) == compiled.node_hash(a, b)
        assert pure.value_leaf_hash(a, value) == compiled.value_leaf_hash(a, value)


@pytest.mark.parametrize("args", [(b"x" * 31, b"y" * 32), (b"x" * 32, b"y" * 33), ("x" * 32, b"y" * 32), (b"x" * 32,)])
def test_tree_hashes_refuse_wrong_inputs(args):
    with pytest.raises(TypeError):
        _native.node_hash(*args)
    with pytest.raises(TypeError):
        _native.leaf_hash(*args)


# ------------------------------------------------------------------ PosMap against dict

KEYS = st.one_of(
    st.integers(1, 64),  # dense: collisions, sibling pairs, backward shifts on delete
    st.integers(1, 1 << 20).map(lambda n: n | 1 << 20),
    st.sampled_from([0, -1, -(1 << 70), (1 << 64) - 1, 1 << 64, (1 << 257) - 1, 1 << 256]),  # outside 1..2**64-1
    st.integers(1, (1 << 257) - 1),
)
OPS = st.lists(
    st.tuples(st.sampled_from(["set", "set", "set", "get", "pop", "popd", "del", "in", "getitem", "clear"]), KEYS),
    max_size=400,
)


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(OPS)
def test_posmap_behaves_as_a_dict(ops):
    m, d = _native.PosMap(), {}
    for i, (op, key) in enumerate(ops):
        value = (key, i)
        if op == "set":
            m[key] = value
            d[key] = value
        elif op == "get":
            assert m.get(key) == d.get(key)
            assert m.get(key, "dflt") == d.get(key, "dflt")
        elif op == "popd":
            assert m.pop(key, None) == d.pop(key, None)
        elif op in ("pop", "del", "getitem"):
            expected_missing = key not in d
            try:
                if op == "pop":
                    got = m.pop(key)
                elif op == "del":
                    del m[key]
                    got = None
                else:
                    got = m[key]
            except KeyError:
                assert expected_missing
            else:
                assert not expected_missing
                if op == "pop":
                    assert got == d.pop(key)
                elif op == "del":
                    del d[key]
                else:
                    assert got == d[key]
        elif op == "in":
            assert (key in m) == (key in d)
        elif op == "clear" and i % 7 == 0:
            m.clear()
            d.clear()
        assert len(m) == len(d)
    assert sorted(m.items()) == sorted(d.items())
    assert sorted(m.keys()) == sorted(d)
    assert dict(m) == d
    for key in d:  # every survivor still reachable after all the shifting
        assert m[key] == d[key]


def test_posmap_grows_and_shrinks_through_many_keys():
    m, d = _native.PosMap(), {}
    rnd = random.Random(3)
    for _ in range(50_000):
        key = rnd.randrange(1, 1 << 22)
        if rnd.random() < 0.6:
            m[key] = d[key] = key * 3
        else:
            assert m.pop(key, None) == d.pop(key, None)
    assert len(m) == len(d)
    assert all(m[k] == v for k, v in d.items())
    assert m.__sizeof__() > 0
