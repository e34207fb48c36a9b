"""The escape hatch: freeze after `escape_delay` without checkpoints, then the BALANCE leaf of the last checkpoint,
the deposits the engine had not credited by then, and the unclaimed withdrawable."""

import boa
import pytest

from ddx_offchain.protocol.hashing import keccak256

from .conftest import ESCAPE_DELAY, Ledger, events, make_deployment

ZERO = b"\0" * 32


@pytest.fixture
def trader():
    return boa.env.generate_address()


def _frozen_with(dx, trader, balance, cumulative, claimed_before=0, deposited=None):
    """`trader` deposited `balance + cumulative` (or `deposited`), all credited in the checkpoint, then frozen."""
    deposited = balance + cumulative if deposited is None else deposited
    dx.deposit(trader, deposited)
    ledger = Ledger()
    ledger.set_balance(trader, dx.token.address, balance, deposited)
    if cumulative:
        ledger.set_withdrawable(trader, dx.token.address, cumulative)
    epoch = dx.checkpoint(ledger.root())
    if claimed_before:
        dx.exchange.claim(trader, dx.token.address, cumulative, epoch, ledger.withdrawal_siblings(trader, dx.token.address))
    return ledger, epoch


def _freeze(dx):
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze(sender=boa.env.generate_address())


def _args(dx, ledger, trader, balance, deposited, cumulative):
    """escape's arguments for the leaves the ledger holds (a non-inclusion proof when the pair has no BALANCE leaf)."""
    token = dx.token.address
    withdrawal_siblings = ledger.withdrawal_siblings(trader, token) if cumulative else []
    if balance == deposited == 0:
        siblings, other_key, other_value_hash = ledger.balance_absence(trader, token)
        return (trader, token, 0, 0, siblings, cumulative, withdrawal_siblings, other_key, other_value_hash)
    return (trader, token, balance, deposited, ledger.balance_siblings(trader, token), cumulative, withdrawal_siblings,
            ZERO, ZERO)


def test_freeze_before_the_delay_is_refused(dx):
    dx.checkpoint(keccak256(b"r"))
    boa.env.time_travel(seconds=ESCAPE_DELAY - 1)
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()
    boa.env.time_travel(seconds=1)
    dx.exchange.freeze()
    (event,) = events(dx.exchange, "Frozen")
    assert event.last_epoch == 1
    assert dx.exchange.frozen()
    with boa.reverts("checkpoints: already frozen"):
        dx.exchange.freeze()


def test_each_checkpoint_restarts_the_escape_clock(dx):
    boa.env.time_travel(seconds=ESCAPE_DELAY - 10)
    dx.checkpoint(keccak256(b"r"))
    boa.env.time_travel(seconds=ESCAPE_DELAY - 1)
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()


def test_escape_clock_starts_at_deployment(dx):
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze()
    assert dx.exchange.frozen()


def test_checkpoint_and_deposit_after_freeze_are_refused(dx, trader):
    dx.fund(trader, 10)
    _freeze(dx)
    with boa.reverts("checkpoints: frozen"):
        dx.submit(dx.checkpoint_message(keccak256(b"r")))
    with boa.reverts("custody: frozen"):
        dx.exchange.deposit(dx.token.address, 10, sender=trader)


def test_escape_pays_balance_plus_unclaimed_withdrawable(dx, trader):
    ledger, epoch = _frozen_with(dx, trader, balance=300, cumulative=200)
    _freeze(dx)
    relayer = boa.env.generate_address()
    paid = dx.exchange.escape(*_args(dx, ledger, trader, 300, 500, 200), sender=relayer)
    (event,) = events(dx.exchange, "Escape")
    assert (event.trader, event.epoch, event.balance, event.deposited, event.cumulative, event.paid, event.unpaid) == (
        trader, epoch, 300, 500, 200, 500, 0,
    )
    assert paid == 500
    assert dx.token.balanceOf(trader) == 500
    assert dx.token.balanceOf(relayer) == 0
    assert dx.exchange.escaped(trader, dx.token.address) == 300
    assert dx.exchange.claimed(trader, dx.token.address) == 200
    assert dx.exchange.deposited(trader, dx.token.address) == 500


def test_escape_returns_deposits_made_after_the_last_checkpoint(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200)
    dx.deposit(trader, 1_000)  # never credited: the operators stopped
    dx.deposit(trader, 7)
    _freeze(dx)
    assert dx.exchange.escape(*_args(dx, ledger, trader, 300, 500, 200)) == 300 + 200 + 1_007
    assert dx.token.balanceOf(dx.exchange.address) == 0


def test_escape_after_losing_everything_returns_only_the_later_deposits(dx, trader):
    # the engine credited 500 and the trader lost it all: the leaf (0, 500) stays, so absence cannot be claimed
    ledger, _ = _frozen_with(dx, trader, balance=0, cumulative=0, deposited=500)
    dx.deposit(trader, 200)
    _freeze(dx)
    siblings, other_key, other_value_hash = ledger.balance_siblings(trader, dx.token.address), ZERO, ZERO
    with boa.reverts("custody: invalid balance proof"):  # "no leaf" would return all 700
        dx.exchange.escape(trader, dx.token.address, 0, 0, siblings, 0, [], other_key, other_value_hash)
    assert dx.exchange.escape(*_args(dx, ledger, trader, 0, 500, 0)) == 200


def test_escape_with_no_checkpoint_returns_every_deposit(dx, trader):
    dx.deposit(trader, 400)
    dx.deposit(trader, 100)
    _freeze(dx)
    assert dx.exchange.escape(trader, dx.token.address, 0, 0, [], 0, [], ZERO, ZERO) == 500
    assert dx.token.balanceOf(trader) == 500
    with boa.reverts("custody: nothing to escape"):  # once per token
        dx.exchange.escape(trader, dx.token.address, 0, 0, [], 0, [], ZERO, ZERO)
    stranger = boa.env.generate_address()
    with boa.reverts("custody: nothing to escape"):
        dx.exchange.escape(stranger, dx.token.address, 0, 0, [], 0, [], ZERO, ZERO)
    # no leaf can be proven in the empty tree of "no checkpoint"
    with boa.reverts("custody: invalid balance proof"):
        dx.exchange.escape(stranger, dx.token.address, 10, 0, [], 0, [], ZERO, ZERO)


def _pair_whose_absence_ends(ledger, token, in_other_leaf: bool):
    """A fresh trader whose BALANCE key's non-inclusion path ends in another leaf (or in an empty subtree)."""
    for _ in range(500):
        candidate = boa.env.generate_address()
        _, other_key, _ = ledger.balance_absence(candidate, token)
        if (other_key != ZERO) == in_other_leaf:
            return candidate
    raise AssertionError("no such key found")


@pytest.mark.parametrize("in_other_leaf", [True, False], ids=["path ends in another leaf", "path ends in EMPTY"])
def test_escape_of_a_pair_the_engine_never_credited_proves_absence(dx, trader, in_other_leaf):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=0)
    for i in range(30):  # more balance leaves, so some paths end in another leaf and some in EMPTY
        ledger.set_balance(boa.env.generate_address(), dx.token.address, i + 1, i + 1)
    dx.checkpoint(ledger.root())
    late = _pair_whose_absence_ends(ledger, dx.token.address, in_other_leaf)
    dx.deposit(late, 250)  # after the last checkpoint: in no leaf
    _freeze(dx)
    args = _args(dx, ledger, late, 0, 0, 0)
    assert dx.exchange.escape(*args) == 250
    with boa.reverts("custody: nothing to escape"):
        dx.exchange.escape(*args)


def test_a_present_leaf_cannot_be_passed_off_as_absent(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=0)
    dx.deposit(trader, 50)
    _freeze(dx)
    token = dx.token.address
    key = ledger.items.balance_key(trader, token)
    siblings = ledger.balance_siblings(trader, token)
    value_hash = ledger.tree.value_hash(key)
    honest = _args(dx, ledger, trader, 300, 300, 0)
    with boa.reverts("state_proof: the other leaf is not on the key's path"):  # "the other leaf" is its own leaf
        dx.exchange.escape(trader, token, 0, 0, siblings, 0, [], key, value_hash)
    with boa.reverts("custody: invalid balance proof"):  # or an empty subtree where its leaf is
        dx.exchange.escape(trader, token, 0, 0, siblings, 0, [], ZERO, ZERO)
    # a leaf elsewhere in the tree (kind 0x07 differs from 0x08 at bit 4) does not prove this pair absent either
    other = boa.env.generate_address()
    other_key = ledger.items.withdrawal_key(other, token)
    assert len(siblings) > 4
    with boa.reverts("state_proof: the other leaf is not on the key's path"):
        dx.exchange.escape(trader, token, 0, 0, siblings, 0, [], other_key, keccak256(b"any value"))
    assert dx.exchange.escape(*honest) == 350


def test_escape_only_once_per_token_and_claims_cannot_double_dip(dx, trader):
    ledger, epoch = _frozen_with(dx, trader, balance=300, cumulative=200)
    dx.deposit(trader, 40)
    _freeze(dx)
    args = _args(dx, ledger, trader, 300, 500, 200)
    assert dx.exchange.escape(*args) == 540
    with boa.reverts("custody: nothing to escape"):
        dx.exchange.escape(*args)
    with boa.reverts("custody: nothing to claim"):
        dx.exchange.claim(trader, dx.token.address, 200, epoch, ledger.withdrawal_siblings(trader, dx.token.address))
    assert dx.token.balanceOf(trader) == 540


def test_escape_after_a_claim_pays_only_the_balance(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200, claimed_before=True)
    _freeze(dx)
    assert dx.token.balanceOf(trader) == 200
    assert dx.exchange.escape(*_args(dx, ledger, trader, 300, 500, 200)) == 300
    assert dx.token.balanceOf(trader) == 500


def test_escape_without_a_withdrawal_leaf(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=0)
    _freeze(dx)
    assert dx.exchange.escape(*_args(dx, ledger, trader, 300, 300, 0)) == 300


def test_escape_before_freeze_is_refused(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=10, cumulative=0)
    with boa.reverts("custody: not frozen"):
        dx.exchange.escape(*_args(dx, ledger, trader, 10, 10, 0))


def test_escape_uses_only_the_last_checkpoint(dx, trader):
    dx.deposit(trader, 1_000)
    ledger = Ledger()
    ledger.set_balance(trader, dx.token.address, 900, 1_000)
    dx.checkpoint(ledger.root())
    stale = _args(dx, ledger, trader, 900, 1_000, 0)
    ledger.set_balance(trader, dx.token.address, 100, 1_000)  # the trader lost 800 in the next epoch
    dx.checkpoint(ledger.root())
    _freeze(dx)
    with boa.reverts("custody: invalid balance proof"):
        dx.exchange.escape(*stale)
    assert dx.exchange.escape(*_args(dx, ledger, trader, 100, 1_000, 0)) == 100


def test_escape_proofs_are_checked(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200)
    other = boa.env.generate_address()
    dx.deposit(other, 600)
    _freeze(dx)
    token = dx.token.address
    balance_siblings = ledger.balance_siblings(trader, token)
    withdrawal_siblings = ledger.withdrawal_siblings(trader, token)
    with boa.reverts("custody: invalid balance proof"):
        dx.exchange.escape(trader, token, 301, 500, balance_siblings, 0, [], ZERO, ZERO)
    with boa.reverts("custody: invalid withdrawal proof"):
        dx.exchange.escape(trader, token, 300, 500, balance_siblings, 201, withdrawal_siblings, ZERO, ZERO)
    with boa.reverts("custody: invalid balance proof"):  # a withdrawal leaf is not a balance leaf
        dx.exchange.escape(trader, token, 200, 0, withdrawal_siblings, 0, [], ZERO, ZERO)
    with boa.reverts("custody: invalid balance proof"):  # another trader's leaf
        dx.exchange.escape(other, token, 300, 500, balance_siblings, 0, [], ZERO, ZERO)


def test_an_understated_deposited_field_is_refused(dx, trader):
    """Lowering the leaf's `deposited` would make credited deposits look uncredited and pay them twice."""
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=0)
    dx.deposit(trader, 100)
    _freeze(dx)
    siblings = ledger.balance_siblings(trader, dx.token.address)
    for deposited in (0, 1, 299):
        with boa.reverts("custody: invalid balance proof"):
            dx.exchange.escape(trader, dx.token.address, 300, deposited, siblings, 0, [], ZERO, ZERO)
    # overstating it only lowers what is owed: with nothing owed no proof is even read, and nothing is paid
    with boa.reverts("custody: nothing to escape"):
        dx.exchange.escape(trader, dx.token.address, 300, 10**6, siblings, 0, [], ZERO, ZERO)
    assert dx.exchange.escape(*_args(dx, ledger, trader, 300, 300, 0)) == 400


def test_escape_is_rate_limited_and_completes_in_parts():
    with boa.env.anchor():
        dx = make_deployment(capacity=250, period=3_600)
        trader = boa.env.generate_address()
        ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200)
        dx.deposit(trader, 100)
        _freeze(dx)
        args = _args(dx, ledger, trader, 300, 500, 200)
        assert dx.exchange.escape(*args) == 250  # withdrawable part first (200), then 50 of the balance
        assert (dx.exchange.claimed(trader, dx.token.address), dx.exchange.escaped(trader, dx.token.address)) == (200, 50)
        with boa.reverts("custody: rate limit exhausted"):
            dx.exchange.escape(*args)
        boa.env.time_travel(seconds=3_600)
        assert dx.exchange.escape(*args) == 250
        boa.env.time_travel(seconds=3_600)
        assert dx.exchange.escape(*args) == 100
        assert dx.token.balanceOf(trader) == 600
        with boa.reverts("custody: nothing to escape"):
            dx.exchange.escape(*args)


def test_a_leaf_crediting_deposits_the_chain_never_saw_is_netted_and_the_sdk_agrees(dx, trader):
    """Security review finding 5: the contract and the SDK disagreed when a leaf's `deposited` exceeds the chain's
    (only a lying quorum writes such a leaf). The rule is the contract's: the phantom deposits are deducted."""
    from ddx_offchain.client.claims import escape_balance_owed

    dx.deposit(trader, 300)
    ledger = Ledger()
    ledger.set_balance(trader, dx.token.address, 250, 400)  # claims 400 credited; the chain saw 300
    dx.checkpoint(ledger.root())
    dx.token.mint(dx.exchange.address, 1_000)  # the contract holds enough: only the formula limits the payout
    _freeze(dx)
    predicted = escape_balance_owed(250, 400, dx.exchange.deposited(trader, dx.token.address), 0)
    assert predicted == 150
    assert dx.exchange.escape(*_args(dx, ledger, trader, 250, 400, 0)) == predicted
    assert escape_balance_owed(50, 400, 300, 0) == 0  # never negative
