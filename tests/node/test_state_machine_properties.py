"""Property test of the replicated state machine over random logs: duplicates, replays, forgeries, time jumps.
DDX_FSM_EXAMPLES raises the number of random logs (default 60)."""

from __future__ import annotations

import os

from fakes import RecordingEngine
from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.node.state_machine import DUPLICATE, REFUSED, SEQUENCED, ExchangeStateMachine
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.requests import REPLAY_WINDOW_MS, CancelAll, encode_entry, sign_request, strategy_id

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
KEYS = [bytes([k]) * 32 for k in (1, 2, 3)]
T0 = 1_700_000_000_000
EXAMPLES = int(os.environ.get("DDX_FSM_EXAMPLES", "60"))
_cache: dict = {}


def entry(key_index: int, nonce: int, ts_offset: int, forged: bool) -> bytes:
    """Signed once per distinct input (signing dominates the test's cost otherwise)."""
    k = (key_index, nonce, ts_offset, forged)
    if k not in _cache:
        key = KEYS[key_index]
        request = CancelAll(address_of(key), strategy_id("main"), b"\x00" * 32, nonce, T0 + ts_offset)
        signer = KEYS[(key_index + 1) % 3] if forged else key
        _cache[k] = encode_entry(sign_request(request, DOMAIN, signer))
    return _cache[k]


log_entries = st.lists(
    st.tuples(
        st.integers(0, 2),  # trader
        st.integers(0, 5),  # nonce: small, so collisions are frequent
        st.sampled_from([0, 1_000, REPLAY_WINDOW_MS // 2, REPLAY_WINDOW_MS + 1, 2 * REPLAY_WINDOW_MS + 5]),
        st.sampled_from([False, False, False, True]),  # forged: signed by another trader's key
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(log=log_entries, cut=st.integers(0, 40))
def test_random_logs(log, cut):
    entries = [entry(*spec) for spec in log]
    a = ExchangeStateMachine(DOMAIN, RecordingEngine())
    results = [a.apply(i + 1, e) for i, e in enumerate(entries)]

    # same log, same outcomes and state (determinism), also across a snapshot at any point
    b = ExchangeStateMachine(DOMAIN, RecordingEngine())
    cut = min(cut, len(entries))
    for i, e in enumerate(entries[:cut]):
        b.apply(i + 1, e)
    c = ExchangeStateMachine(DOMAIN, RecordingEngine())
    c.restore(b.snapshot())
    rest = [c.apply(i + 1, e) for i, e in enumerate(entries) if i >= cut]
    assert [(r.status, r.request_index, r.reason, r.duplicate_of) for r in results[cut:]] == [
        (r.status, r.request_index, r.reason, r.duplicate_of) for r in rest
    ]
    assert c.snapshot() == a.snapshot()

    # rules: forged entries never execute; a (trader, nonce) executes at most once inside the window;
    # a duplicate points at an executed original with the same (trader, nonce)
    executed: dict[tuple, list[int]] = {}
    by_index = {r.request_index: r for r in results}
    high_water = 0
    for spec, r in zip(log, results):
        key_index, nonce, offset, forged = spec
        if forged:
            assert (r.status, r.reason) == (REFUSED, "signer_mismatch")
            continue
        ts = T0 + offset
        if ts + REPLAY_WINDOW_MS < high_water:
            assert (r.status, r.reason) == (REFUSED, "expired")
            continue
        high_water = max(high_water, ts)
        if r.status == SEQUENCED:
            for earlier_ts in executed.get((key_index, nonce), []):
                assert earlier_ts + REPLAY_WINDOW_MS < high_water  # the earlier one had left the window
            executed.setdefault((key_index, nonce), []).append(ts)
        else:
            assert r.status == DUPLICATE
            original = by_index[r.duplicate_of]
            assert original.status == SEQUENCED and (original.sender, original.nonce) == (r.sender, r.nonce)
    assert len(a.engine.executed) == sum(len(v) for v in executed.values())
