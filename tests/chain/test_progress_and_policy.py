"""Checkpoint progress (pure) and the relay policy: signatures, quorum, stages, relayer turns, fees, backoff."""

from __future__ import annotations

import pytest
from eth_account import Account

from ddx_offchain.chain.core.progress import CheckpointProgress, SignatureRejected, Stage, Submission
from ddx_offchain.chain.core.relay_policy import GWEI, Backoff, FeePolicy, Fees, FeeTooHigh, may_relay, relay_order
from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.errors import ProtocolError
from ddx_offchain.protocol.hashing import keccak256

KEYS = sorted(
    (keccak256(f"progress test {i}".encode()) for i in range(4)), key=lambda k: int(Account.from_key(k).address, 16)
)
MEMBERS = tuple(Account.from_key(k).address for k in KEYS)
SET = om.OperatorSet(1, 3, MEMBERS)
DOMAIN = om.Domain(31337, "0x" + "ab" * 20)
ROOT = b"\x42" * 32


def message(epoch: int = 1, root: bytes = ROOT) -> om.Checkpoint:
    return om.Checkpoint(1, epoch, root, 100, b"\x10" * 32)


def progress(me: int = 0, **kw) -> CheckpointProgress:
    return CheckpointProgress(DOMAIN, SET, MEMBERS[me], confirmations=2, **kw)


def test_built_signed_quorum_submitted_recorded_final():
    p = progress()
    p.built(message(), 0.0)
    assert p.epochs[1].stage is Stage.BUILT
    p.signed(1, om.sign(message(), DOMAIN, KEYS[0]), 1.0)
    assert p.epochs[1].stage is Stage.SIGNED
    p.add_signature(1, MEMBERS[1], om.sign(message(), DOMAIN, KEYS[1]), 2.0)
    assert p.epochs[1].stage is Stage.SIGNED and len(p.epochs[1].signatures) == 2
    p.add_signature(1, MEMBERS[3], om.sign(message(), DOMAIN, KEYS[3]), 3.0)
    cp = p.epochs[1]
    assert cp.stage is Stage.QUORUM and cp.quorum_at == 3.0
    quorum = p.quorum(1)
    assert quorum.signer_bitmap == 0b1011
    p.submitted(1, Submission(b"\x01" * 32, 0, 10, 1, 0, 4.0))
    assert cp.stage is Stage.SUBMITTED
    p.observe_chain(1, recorded_root=ROOT, latest_epoch=1, recorded_block=50, now=5.0)
    assert cp.stage is Stage.RECORDED
    p.observe_head(51, 6.0)
    assert cp.stage is Stage.RECORDED
    p.observe_head(52, 7.0)
    assert cp.stage is Stage.FINAL
    status = p.status(8.0)
    assert status["lastRecordedEpoch"] == 1 and status["lastFinalEpoch"] == 1
    assert status["epochs"][0]["txHashes"] == ["0x" + "01" * 32]
    assert status["epochs"][0]["secondsToFinal"] == 7.0


def test_a_peer_signing_another_root_does_not_count():
    p = progress()
    p.built(message(), 0.0)
    with pytest.raises(SignatureRejected, match="another checkpoint"):
        p.add_signature(1, MEMBERS[1], om.sign(message(root=b"\x43" * 32), DOMAIN, KEYS[1]), 1.0)
    assert MEMBERS[1] not in p.epochs[1].signatures
    assert MEMBERS[1] in p.status(1.0)["epochs"][0]["rejectedAnswers"]


def test_signatures_from_outside_the_set_or_malformed_do_not_count():
    p = progress()
    p.built(message(), 0.0)
    outsider = keccak256(b"outsider")
    with pytest.raises(SignatureRejected, match="not in operator set"):
        p.add_signature(1, Account.from_key(outsider).address, om.sign(message(), DOMAIN, outsider), 1.0)
    with pytest.raises(SignatureRejected):
        p.add_signature(1, MEMBERS[1], b"\x00" * 64, 1.0)
    # a valid signature passed on under another member's name counts for the member who signed it, never the claim
    p.add_signature(1, MEMBERS[2], om.sign(message(), DOMAIN, KEYS[1]), 1.0)
    assert MEMBERS[1] in p.epochs[1].signatures and MEMBERS[2] not in p.epochs[1].signatures


def test_high_s_twin_is_refused():
    p = progress()
    p.built(message(), 0.0)
    sig = om.sign(message(), DOMAIN, KEYS[1])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(SignatureRejected, match="high-s"):
        p.add_signature(1, MEMBERS[1], twin, 1.0)


def test_signatures_arriving_before_the_epoch_is_built_are_kept():
    p = progress()
    p.add_signature(1, MEMBERS[1], om.sign(message(), DOMAIN, KEYS[1]), 0.0)
    p.add_signature(1, MEMBERS[2], om.sign(message(), DOMAIN, KEYS[2]), 0.0)
    with pytest.raises(SignatureRejected):
        p.add_signature(50, MEMBERS[1], om.sign(message(50), DOMAIN, KEYS[1]), 0.0)  # too far ahead
    p.built(message(), 1.0)
    p.signed(1, om.sign(message(), DOMAIN, KEYS[0]), 2.0)
    assert p.epochs[1].stage is Stage.QUORUM


def test_refused_epoch_is_never_signed():
    p = progress()
    p.built(message(), 0.0)
    p.refuse(1, "block 100: fake deposit")
    assert p.epochs[1].stage is Stage.REFUSED
    with pytest.raises(ProtocolError):
        p.signed(1, om.sign(message(), DOMAIN, KEYS[0]), 1.0)
    assert p.status(1.0)["state"] == "refusing"


def test_rebuilding_an_epoch_with_other_contents_is_an_error():
    p = progress()
    p.built(message(), 0.0)
    with pytest.raises(ProtocolError):
        p.built(message(root=b"\x01" * 32), 0.0)


def test_superseded_conflict_and_reorged_recording():
    p = progress()
    p.built(message(1), 0.0)
    p.built(message(2), 0.0)
    p.observe_chain(1, recorded_root=b"\0" * 32, latest_epoch=2, recorded_block=None, now=1.0)
    assert p.epochs[1].stage is Stage.SUPERSEDED
    p.observe_chain(2, recorded_root=b"\x01" * 32, latest_epoch=2, recorded_block=9, now=1.0)
    assert p.epochs[2].stage is Stage.CONFLICT and "0x01" in p.epochs[2].reason
    assert p.status(1.0)["state"] == "conflict"
    q = progress()
    q.built(message(3), 0.0)
    q.observe_chain(3, recorded_root=ROOT, latest_epoch=3, recorded_block=9, now=1.0)
    assert q.epochs[3].stage is Stage.RECORDED
    q.observe_chain(3, recorded_root=b"\0" * 32, latest_epoch=2, recorded_block=None, now=2.0)  # reorged out
    assert q.epochs[3].stage is Stage.QUORUM and q.epochs[3].recorded_block is None


def test_stalled_when_signatures_stay_short():
    p = progress(stall_after_s=30)
    p.built(message(), 0.0)
    p.signed(1, om.sign(message(), DOMAIN, KEYS[0]), 1.0)
    assert p.status(10.0)["state"] == "collecting"
    assert p.status(31.0)["state"] == "stalled"


# ---- relay policy ------------------------------------------------------------------------------------------


def test_relay_order_rotates_by_epoch_and_falls_back_after_timeouts():
    assert relay_order(0, MEMBERS) == list(MEMBERS)
    assert relay_order(1, MEMBERS) == list(MEMBERS[1:] + MEMBERS[:1])
    assert relay_order(5, MEMBERS)[0] == MEMBERS[1]
    first, second = relay_order(2, MEMBERS)[:2]
    assert may_relay(2, MEMBERS, first, 0.0, 30)
    assert not may_relay(2, MEMBERS, second, 29.9, 30)
    assert may_relay(2, MEMBERS, second, 30.0, 30)
    assert may_relay(2, MEMBERS, first, 31.0, 30)  # the first keeps trying
    assert not may_relay(2, MEMBERS, "0x" + "99" * 20, 1000.0, 30)
    assert sum(may_relay(e, MEMBERS, m, 0.0, 30) for e in range(8) for m in MEMBERS) == 8  # exactly one at first


def test_fees_bump_on_each_attempt_and_respect_the_cap():
    policy = FeePolicy(max_fee_cap=100 * GWEI, priority_fee=2 * GWEI, bump_percent=25)
    first = policy.fees(10 * GWEI, 0)
    assert first == Fees(22 * GWEI, 2 * GWEI)
    second = policy.fees(10 * GWEI, 1, previous=first)
    assert second.max_priority_fee_per_gas >= first.max_priority_fee_per_gas * 110 // 100
    assert second.max_fee_per_gas >= first.max_fee_per_gas * 110 // 100
    capped = policy.fees(60 * GWEI, 0)
    assert capped.max_fee_per_gas == 100 * GWEI
    with pytest.raises(FeeTooHigh, match="above the cap"):
        policy.fees(150 * GWEI, 0)  # a gas price spike: wait rather than overpay
    with pytest.raises(FeeTooHigh):
        policy.fees(60 * GWEI, 1, previous=capped)  # cannot outbid its own capped transaction
    with pytest.raises(ValueError):
        FeePolicy(bump_percent=5)  # nodes would not accept the replacement


def test_backoff_grows_and_caps():
    b = Backoff(initial=1.0, factor=2.0, maximum=10.0)
    assert [b.delay(n) for n in range(6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0]


def test_relay_failures_are_counted_for_good_and_exported_as_a_counter():
    """The per-epoch gauge drops when an epoch is superseded; the counter keeps every failure (issue 15: a relay
    that never worked looked healthy)."""
    from prometheus_client import CollectorRegistry

    from ddx_offchain.chain.chain_metrics import ChainMetrics

    p = progress()
    for epoch in (1, 2):
        p.built(message(epoch), 0.0)
        p.failed(epoch, "anchored block not in the past", retry_at=1.0)
    p.failed(2, "anchored block not in the past", retry_at=2.0)
    assert p.relay_failures_total == 3
    registry = CollectorRegistry()
    metrics = ChainMetrics(registry)
    checkpointer = type("C", (), {})()
    checkpointer.progress = p
    checkpointer.health = checkpointer.verifier = None
    checkpointer.inbox_mismatches = 2
    checkpointer.price_refusals = 1
    checkpointer.time_refusals = 0
    checkpointer.prices = None

    class Health:
        total_failures = consecutive_failures = 0

    checkpointer.health = Health()
    checkpointer.verifier = type("V", (), {"health": Health(), "blocks": type("B", (), {"mismatches": lambda self: []})()})()
    metrics.refresh(None, checkpointer)
    metrics.refresh(None, checkpointer)  # a second scrape adds nothing new
    assert registry.get_sample_value("ddx_checkpoint_relay_attempts_failed_total") == 3
    assert registry.get_sample_value("ddx_checkpoint_inbox_mismatches_total") == 2
    assert registry.get_sample_value("ddx_checkpoint_price_refusals_total") == 1


def test_a_restarted_node_knows_the_recorded_epoch_from_the_contract():
    """Issue 16 (left open last round): a restarted node answered `no_recorded_epoch` until its checkpointer had
    rebuilt and observed that epoch again; the contract's latest epoch is read on every tick now."""
    p = progress()
    assert p.last_recorded() is None
    p.observe_latest(5)  # recorded before the restart: this node never built it since
    assert p.last_recorded() == 5
    p.observe_latest(3)  # a stale read never moves it back
    assert p.last_recorded() == 5 and p.status(0.0)["lastRecordedEpoch"] == 5
