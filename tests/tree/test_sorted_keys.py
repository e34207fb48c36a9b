"""SortedKeys against a sorted list, across block splits and block removals."""

from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.tree.sorted_keys import BLOCK, SortedKeys
from tree_strategies import EXAMPLES

small_keys = st.integers(0, 4 * BLOCK).map(lambda i: i.to_bytes(32, "big"))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.sets(small_keys, max_size=3 * BLOCK),
    st.lists(st.tuples(st.booleans(), small_keys), max_size=6 * BLOCK),
    st.lists(st.tuples(small_keys, small_keys), max_size=20),
)
def test_matches_a_sorted_list(initial, ops, ranges):
    keys = SortedKeys(sorted(initial))
    model = set(initial)
    for add, key in ops:
        if add and key not in model:
            keys.add(key)
            model.add(key)
        elif not add and key in model:
            keys.remove(key)
            model.discard(key)
    ordered = sorted(model)
    assert list(keys) == ordered and len(keys) == len(ordered)
    assert all(len(block) <= 2 * BLOCK and block for block in keys._blocks)
    assert keys._lasts == [block[-1] for block in keys._blocks]
    for low, high in ranges:
        assert keys.between(low, high) == [k for k in ordered if low <= k <= high]
        successor = next((k for k in ordered if k >= low), None)
        assert keys.first_at_or_after(low) == successor


def test_ascending_inserts_split_blocks():
    keys = SortedKeys()
    for i in range(5 * BLOCK):
        keys.add(i.to_bytes(32, "big"))
    assert len(keys._blocks) > 2
    assert list(keys) == [i.to_bytes(32, "big") for i in range(5 * BLOCK)]
