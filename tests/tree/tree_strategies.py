"""Hypothesis strategies for tree tests. DDX_HYPOTHESIS_EXAMPLES (default 40) scales every property test."""

import os

from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DDX_HYPOTHESIS_EXAMPLES", "40"))


@st.composite
def clustered_key(draw, base: bytes) -> bytes:
    """A key sharing a drawn number of leading bits with `base` (long shared prefixes make deep paths)."""
    shared_bits = draw(st.sampled_from([0, 1, 8, 100, 200, 250, 254, 255]) | st.integers(0, 255))
    suffix = draw(st.integers(0, (1 << (256 - shared_bits)) - 1))
    prefix = int.from_bytes(base, "big") >> (256 - shared_bits) << (256 - shared_bits) if shared_bits else 0
    return (prefix | suffix).to_bytes(32, "big")


@st.composite
def key_sets(draw, min_size: int = 1, max_size: int = 50) -> set[bytes]:
    base = draw(st.binary(min_size=32, max_size=32))
    keys = draw(
        st.sets(clustered_key(base) | st.binary(min_size=32, max_size=32), min_size=min_size, max_size=max_size)
    )
    return keys


@st.composite
def operations(draw, max_ops: int = 80) -> list[tuple[str, bytes, bytes, bool]]:
    """Puts and deletes over a small key pool (so keys are revisited), with occasional re-hash points."""
    pool = sorted(draw(key_sets(max_size=25)))
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["put", "put", "delete"]),
                st.sampled_from(pool),
                st.binary(max_size=40),
                st.booleans(),
            ),
            max_size=max_ops,
        )
    )
