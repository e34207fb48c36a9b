"""The replicated state machine (docs/protocol.md §7.4): re-verification, replay window, duplicates, snapshots."""

from __future__ import annotations

import pytest
from fakes import RecordingEngine

from ddx_offchain.node.state_machine import DUPLICATE, REFUSED, SEQUENCED, ExchangeStateMachine
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.requests import (
    REPLAY_WINDOW_MS,
    CreateStrategy,
    PlaceOrder,
    decode_entry,
    encode_entry,
    market_id,
    sign_request,
    strategy_id,
    verify_request,
)

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
KEY = b"\x11" * 32
TRADER = address_of(KEY)
T0 = 1_700_000_000_000


def order(nonce: int, ts: int = T0, key: bytes = KEY, trader: bytes = TRADER) -> bytes:
    request = PlaceOrder(trader, strategy_id("main"), market_id("ETHP"), 0, 0, 100, 1, False, nonce, ts)
    return encode_entry(sign_request(request, DOMAIN, key))


def machine() -> ExchangeStateMachine:
    return ExchangeStateMachine(DOMAIN, RecordingEngine())


def test_sequences_and_assigns_dense_request_indexes():
    m = machine()
    assert m.apply(1, b"") is None  # a Raft no-op is not a request
    a = m.apply(2, order(1))
    b = m.apply(3, order(2))
    assert (a.status, a.request_index, b.request_index) == (SEQUENCED, 1, 2)
    assert m.engine.executed == [a.request_hash, b.request_hash]


def test_forged_entry_from_a_faulty_leader_is_refused_and_not_executed():
    m = machine()
    entry = bytearray(order(1))
    entry[2 + 32 * 5 + 31] ^= 1  # change the price after signing
    applied = m.apply(1, bytes(entry))
    assert (applied.status, applied.reason) == (REFUSED, "signer_mismatch")
    impostor = order(2, key=b"\x22" * 32, trader=TRADER)  # signed by someone else in the trader's name
    assert m.apply(2, impostor).reason == "signer_mismatch"
    assert m.apply(3, b"\x01\x01garbage").reason == "malformed_entry"
    assert m.engine.executed == []


def test_duplicate_nonce_executes_once_and_points_at_the_original():
    m = machine()
    first = m.apply(1, order(7))
    again = m.apply(2, order(7))
    other = m.apply(3, order(7, ts=T0 + 1))  # same nonce, different request: still a duplicate in the window
    assert again.status == DUPLICATE and again.duplicate_of == first.request_index
    assert other.status == DUPLICATE
    assert len(m.engine.executed) == 1


def test_expired_requests_are_refused_and_old_nonces_are_forgotten():
    m = machine()
    m.apply(1, order(1, ts=T0))
    m.apply(2, order(2, ts=T0 + REPLAY_WINDOW_MS + 1))  # moves the high-water mark past the first's window
    replay = m.apply(3, order(1, ts=T0))
    assert (replay.status, replay.reason) == (REFUSED, "expired")
    assert m.seen(TRADER, 1) is None  # forgotten: the window no longer needs it
    assert m.seen_by_hash(replay.request_hash) is None
    reuse = m.apply(4, order(1, ts=T0 + REPLAY_WINDOW_MS + 2))  # nonce reuse after the window is allowed
    assert reuse.status == SEQUENCED


def test_entries_are_applied_in_order_exactly_once():
    m = machine()
    m.apply(5, order(1))
    with pytest.raises(ValueError):
        m.apply(5, order(2))


def test_snapshot_restore_gives_the_same_future():
    log = [order(n, ts=T0 + n) for n in range(1, 30)] + [order(3), order(40, ts=T0 - REPLAY_WINDOW_MS)]
    whole = machine()
    results_whole = [whole.apply(i + 1, e) for i, e in enumerate(log)]
    half = machine()
    for i, e in enumerate(log[:15]):
        half.apply(i + 1, e)
    resumed = machine()
    resumed.restore(half.snapshot())
    results_resumed = [resumed.apply(i + 1, e) for i, e in enumerate(log) if i >= 15]
    assert [(r.status, r.request_index, r.reason) for r in results_whole[15:]] == [
        (r.status, r.request_index, r.reason) for r in results_resumed
    ]
    assert resumed.engine.state_root() == whole.engine.state_root()
    assert resumed.snapshot() == whole.snapshot()
    first = results_whole[0]
    trader, nonce, seen = resumed.seen_by_hash(first.request_hash)  # receipts answerable after a snapshot install
    assert (nonce, seen.request_index) == (1, first.request_index)


def test_other_request_types_pass_through():
    m = machine()
    entry = encode_entry(sign_request(CreateStrategy(TRADER, strategy_id("alt"), 1, T0), DOMAIN, KEY))
    assert m.apply(1, entry).status == SEQUENCED
    assert m.apply(2, b"\x02epoch").status == SEQUENCED and m.engine.epoch() == 1


def test_admission_verified_bytes_skip_a_second_recovery_with_the_same_outcome():
    noted, plain = machine(), machine()
    entry = order(1)
    forged = bytearray(order(2))
    forged[-2] ^= 1  # a bit of s flipped: these bytes were never verified by anyone
    noted.note_verified(entry, verify_request(*decode_entry(entry), DOMAIN))
    assert noted.apply(1, entry).request_hash == plain.apply(1, entry).request_hash == plain.engine.executed[0]
    assert noted._verified == {}
    assert noted.apply(2, bytes(forged)).status == REFUSED == plain.apply(2, bytes(forged)).status
    assert noted.snapshot() == plain.snapshot()
