"""The escape hatch: freeze after `escape_delay` without checkpoints, then balance + unclaimed withdrawable."""

import boa
import pytest

from ddx_offchain.protocol.hashing import keccak256

from .conftest import ESCAPE_DELAY, Ledger, events, make_deployment


@pytest.fixture
def trader():
    return boa.env.generate_address()


def _frozen_with(dx, trader, balance, cumulative, claimed_before=0):
    dx.deposit(trader, balance + cumulative)
    ledger = Ledger()
    ledger.set_balance(trader, dx.token.address, balance)
    if cumulative:
        ledger.set_withdrawable(trader, dx.token.address, cumulative)
    epoch = dx.checkpoint(ledger.root())
    if claimed_before:
        dx.exchange.claim(trader, dx.token.address, cumulative, epoch, ledger.withdrawal_siblings(trader, dx.token.address))
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze(sender=boa.env.generate_address())
    return ledger, epoch


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
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze()
    with boa.reverts("checkpoints: frozen"):
        dx.submit(dx.checkpoint_message(keccak256(b"r")))
    with boa.reverts("custody: frozen"):
        dx.exchange.deposit(dx.token.address, 10, sender=trader)


def test_escape_pays_balance_plus_unclaimed_withdrawable(dx, trader):
    ledger, epoch = _frozen_with(dx, trader, balance=300, cumulative=200)
    relayer = boa.env.generate_address()
    paid = dx.exchange.escape(
        trader, dx.token.address,
        300, ledger.balance_siblings(trader, dx.token.address),
        200, ledger.withdrawal_siblings(trader, dx.token.address),
        sender=relayer,
    )
    (event,) = events(dx.exchange, "Escape")
    assert (event.trader, event.epoch, event.balance, event.cumulative, event.paid, event.unpaid) == (
        trader, epoch, 300, 200, 500, 0,
    )
    assert paid == 500
    assert dx.token.balanceOf(trader) == 500
    assert dx.token.balanceOf(relayer) == 0
    assert dx.exchange.escaped(trader, dx.token.address) == 300
    assert dx.exchange.claimed(trader, dx.token.address) == 200


def test_escape_only_once_per_token_and_claims_cannot_double_dip(dx, trader):
    ledger, epoch = _frozen_with(dx, trader, balance=300, cumulative=200)
    args = (
        trader, dx.token.address,
        300, ledger.balance_siblings(trader, dx.token.address),
        200, ledger.withdrawal_siblings(trader, dx.token.address),
    )
    dx.exchange.escape(*args)
    with boa.reverts("custody: nothing to escape"):
        dx.exchange.escape(*args)
    with boa.reverts("custody: nothing to claim"):
        dx.exchange.claim(trader, dx.token.address, 200, epoch, ledger.withdrawal_siblings(trader, dx.token.address))
    assert dx.token.balanceOf(trader) == 500


def test_escape_after_a_claim_pays_only_the_balance(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200, claimed_before=True)
    assert dx.token.balanceOf(trader) == 200
    paid = dx.exchange.escape(
        trader, dx.token.address,
        300, ledger.balance_siblings(trader, dx.token.address),
        200, ledger.withdrawal_siblings(trader, dx.token.address),
    )
    assert paid == 300
    assert dx.token.balanceOf(trader) == 500


def test_escape_without_a_withdrawal_leaf(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=0)
    assert dx.exchange.escape(trader, dx.token.address, 300, ledger.balance_siblings(trader, dx.token.address), 0, []) == 300


def test_escape_before_freeze_is_refused(dx, trader):
    dx.deposit(trader, 10)
    ledger = Ledger()
    ledger.set_balance(trader, dx.token.address, 10)
    dx.checkpoint(ledger.root())
    with boa.reverts("custody: not frozen"):
        dx.exchange.escape(trader, dx.token.address, 10, ledger.balance_siblings(trader, dx.token.address), 0, [])


def test_escape_uses_only_the_last_checkpoint(dx, trader):
    dx.deposit(trader, 1_000)
    ledger = Ledger()
    ledger.set_balance(trader, dx.token.address, 900)
    dx.checkpoint(ledger.root())
    old_siblings = ledger.balance_siblings(trader, dx.token.address)
    ledger.set_balance(trader, dx.token.address, 100)  # the trader lost 800 in the next epoch
    dx.checkpoint(ledger.root())
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze()
    with boa.reverts("custody: invalid balance proof"):
        dx.exchange.escape(trader, dx.token.address, 900, old_siblings, 0, [])
    assert dx.exchange.escape(trader, dx.token.address, 100, ledger.balance_siblings(trader, dx.token.address), 0, []) == 100


def test_escape_proofs_are_checked(dx, trader):
    ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200)
    balance_siblings = ledger.balance_siblings(trader, dx.token.address)
    withdrawal_siblings = ledger.withdrawal_siblings(trader, dx.token.address)
    with boa.reverts("custody: invalid balance proof"):
        dx.exchange.escape(trader, dx.token.address, 301, balance_siblings, 0, [])
    with boa.reverts("custody: invalid withdrawal proof"):
        dx.exchange.escape(trader, dx.token.address, 300, balance_siblings, 201, withdrawal_siblings)
    with boa.reverts("custody: invalid balance proof"):  # a withdrawal leaf is not a balance leaf
        dx.exchange.escape(trader, dx.token.address, 200, withdrawal_siblings, 0, [])
    other = boa.env.generate_address()
    with boa.reverts("custody: invalid balance proof"):  # another trader's balance
        dx.exchange.escape(other, dx.token.address, 300, balance_siblings, 0, [])


def test_escape_with_no_checkpoint_ever_is_refused(dx, trader):
    boa.env.time_travel(seconds=ESCAPE_DELAY)
    dx.exchange.freeze()
    with boa.reverts("custody: no checkpoint to escape from"):
        dx.exchange.escape(trader, dx.token.address, 1, [], 0, [])


def test_escape_is_rate_limited_and_completes_in_parts():
    with boa.env.anchor():
        dx = make_deployment(capacity=250, period=3_600)
        trader = boa.env.generate_address()
        ledger, _ = _frozen_with(dx, trader, balance=300, cumulative=200)
        args = (
            trader, dx.token.address,
            300, ledger.balance_siblings(trader, dx.token.address),
            200, ledger.withdrawal_siblings(trader, dx.token.address),
        )
        assert dx.exchange.escape(*args) == 250  # withdrawable part first (200), then 50 of the balance
        assert (dx.exchange.claimed(trader, dx.token.address), dx.exchange.escaped(trader, dx.token.address)) == (200, 50)
        with boa.reverts("custody: rate limit exhausted"):
            dx.exchange.escape(*args)
        boa.env.time_travel(seconds=3_600)
        assert dx.exchange.escape(*args) == 250
        assert dx.token.balanceOf(trader) == 500
        with boa.reverts("custody: nothing to escape"):
            dx.exchange.escape(*args)
