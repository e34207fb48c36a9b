"""Epoch boundaries (frozen roots, EPOCH items, BALANCE leaves), proofs against frozen roots, snapshots."""

import pytest
from engine_helpers import USDC, Driver, of_type, reason, trader, usd

from ddx_offchain.engine import Engine, SnapshotError, UnknownEpochError
from ddx_offchain.engine.commands import BUY, SELL, AdvanceEpoch
from ddx_offchain.engine.reasons import Reject
from ddx_offchain.engine.updates import EpochFrozen
from ddx_offchain.protocol.hashing import keccak256
from ddx_offchain.protocol.items import balance_value, withdrawal_value
from ddx_offchain.protocol.proof import InclusionProof, verify_inclusion, verify_non_inclusion
from ddx_offchain.tree import StateTree

A, B = trader(1), trader(2)
P = usd(2000)
ONE = 1_000_000


def traded():
    d = Driver(epochs_retained=2)
    d.deposit(A, usd(1_000))
    d.deposit(B, usd(5_000))
    d.price(P)
    d.order(B, SELL, P, ONE)
    d.order(A, BUY, P, ONE)
    d.withdraw(B, usd(100))
    return d


def test_epoch_freezes_the_root_and_records_it():
    d = traded()
    root_before = d.engine.state_root()
    ups = d.epoch()
    (frozen,) = of_type(ups, EpochFrozen)
    assert frozen.epoch == 1 and d.engine.frozen_root(1) == frozen.root
    assert frozen.root != root_before  # BALANCE leaves and the epoch cursor were written first
    assert d.engine.state_root() != frozen.root  # the EPOCH item itself is only in later roots
    assert reason(d.apply(AdvanceEpoch(d.rid(), 5))) == Reject.EPOCH_NOT_NEXT
    with pytest.raises(UnknownEpochError):
        d.engine.frozen_root(9)


def test_proofs_verify_against_the_frozen_root_even_after_more_trading():
    d = traded()
    root = of_type(d.epoch(), EpochFrozen)[0].root
    d.price(usd(2100))
    d.withdraw(B, usd(50))  # changes the live WITHDRAWAL leaf, not the frozen one
    proofs = d.engine.epoch_proofs(1, B, USDC)
    assert proofs["root"] == root
    w = proofs["withdrawal"]
    assert isinstance(w, InclusionProof)
    assert w.value_hash == keccak256(withdrawal_value("0x" + B.hex(), "0x" + USDC.hex(), usd(100)))
    assert verify_inclusion(root, w)
    b = proofs["balance"]
    assert verify_inclusion(root, b)
    # B: 5,000 - 100 withdrawn - 0.40 maker fee, short 1 at 2,000 with mark 2,000 → equity 4,899.60
    # `deposited`: the 5,000 credited to B in USDC
    assert b.value_hash == keccak256(balance_value("0x" + B.hex(), "0x" + USDC.hex(), usd(4899.6), usd(5000)))
    # a trader with nothing withdrawn gets a non-inclusion proof
    assert verify_non_inclusion(root, d.engine.epoch_proofs(1, A, USDC)["withdrawal"])


def test_only_the_last_epochs_are_retained():
    d = traded()
    for _ in range(3):
        d.epoch()
    with pytest.raises(UnknownEpochError):
        d.engine.epoch_proofs(1, A, USDC)
    assert d.engine.epoch_proofs(3, A, USDC)["root"] == d.engine.frozen_root(3)


def test_balance_is_equity_floored_at_zero_and_recomputed_at_each_epoch():
    d = traded()
    d.epoch()
    assert d.engine.balances[A + USDC].amount == usd(1_000) - usd(1)  # after the 1 USDC taker fee
    d.price(usd(1990))
    assert d.engine.balances[A + USDC].amount == usd(999)  # unchanged until the next epoch
    d.epoch()
    assert d.engine.balances[A + USDC].amount == usd(989)


def test_snapshot_restore_gives_the_same_root_and_the_same_future():
    d = traded()
    d.epoch()
    d.order(A, BUY, P - 10_000, ONE // 10)
    data = d.engine.snapshot()
    assert data == d.engine.snapshot()  # deterministic
    restored = Engine.restore(data)
    assert restored.state_root() == d.engine.state_root()
    assert restored.epoch_proofs(1, B, USDC)["root"] == d.engine.frozen_root(1)
    originals = [d.order(B, SELL, P - 10_000, ONE // 10), d.price(usd(1900)), d.epoch()]
    for command, updates in zip(d.log[-3:], originals):
        assert restored.apply(command) == updates  # same updates, same ordinals
    assert restored.state_root() == d.engine.state_root()
    assert restored.frozen_root(2) == d.engine.frozen_root(2)


def test_all_state_is_in_the_tree():
    d = traded()
    d.epoch()
    assert d.engine.all_items() == list(d.engine.tree.items())


@pytest.mark.parametrize("corrupt,match", [
    (lambda b: b"XXXXXXXX" + b[8:], "magic"),
    (lambda b: b[:8] + (9).to_bytes(2, "big") + b[10:], "version"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum"),
    (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "checksum"),
    (lambda b: b[:-40], "length"),
    (lambda b: b[:10], "truncated"),
])
def test_corrupt_snapshots_are_refused(corrupt, match):
    data = traded().engine.snapshot()
    with pytest.raises(SnapshotError, match=match):
        Engine.restore(corrupt(data))


def test_a_snapshot_whose_items_lie_is_refused():
    import msgspec

    from ddx_offchain.engine.snapshot import MAGIC, VERSION

    d = traded()
    d.engine.flush()
    items = [[k, v] for k, v in d.engine.tree.items()]
    bad = StateTree.from_items([(k, v) for k, v in items[1:]]).root()  # claims a root without one item's
    payload = msgspec.msgpack.encode([bad, items, []])
    data = MAGIC + VERSION.to_bytes(2, "big") + len(payload).to_bytes(8, "big") + payload + keccak256(payload)
    with pytest.raises(SnapshotError, match="root"):
        Engine.restore(data)


def test_retained_epochs_cost_their_changes_not_a_tree_each():
    """Freezing records nothing but the items that change afterwards; each retained epoch's tree is rebuilt
    from today's items and the undo logs, with its frozen root, and survives a snapshot (and a version-1 one)."""
    d = traded()
    d.epoch()
    assert d.engine.retained_epochs == [1] and d.engine._undo[1] == {}  # nothing changed since the freeze
    d.order(trader(1), SELL, usd(2_000), 100_000)
    d.engine.flush()
    changed = len(d.engine._undo[1])
    assert 0 < changed < len(d.engine.tree)  # the order, its position and account, the cursors: not everything
    d.epoch()
    d.order(trader(2), BUY, usd(1_990), 100_000)
    for epoch in (1, 2):
        assert d.engine.epoch_tree(epoch).root() == d.engine.frozen_root(epoch)
    restored = Engine.restore(d.engine.snapshot())
    assert restored.retained_epochs == [1, 2]
    for epoch in (1, 2):
        assert restored.epoch_tree(epoch).root() == d.engine.frozen_root(epoch)
        assert restored.epoch_proofs(epoch, trader(1), USDC)["root"] == d.engine.frozen_root(epoch)


def test_a_version_1_snapshot_with_whole_epoch_trees_still_restores():
    import msgspec

    from ddx_offchain.engine.snapshot import MAGIC
    from ddx_offchain.tree import encode_snapshot

    d = traded()
    d.epoch()
    d.order(trader(1), SELL, usd(2_000), 100_000)
    d.epoch()
    d.order(trader(2), BUY, usd(1_990), 100_000)
    d.engine.flush()
    items = [[k, v] for k, v in d.engine.tree.items()]
    trees = [[e, encode_snapshot(d.engine.epoch_tree(e))] for e in (1, 2)]  # what version 1 stored
    payload = msgspec.msgpack.encode([d.engine.tree.root(), items, trees])
    data = MAGIC + (1).to_bytes(2, "big") + len(payload).to_bytes(8, "big") + payload + keccak256(payload)
    restored = Engine.restore(data)
    for epoch in (1, 2):
        assert restored.epoch_tree(epoch).root() == d.engine.frozen_root(epoch)
    assert restored.snapshot() == d.engine.snapshot()
