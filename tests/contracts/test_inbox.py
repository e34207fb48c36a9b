"""The L1 inbox: deposits and forced requests folded into one rolling hash; checkpoints must state a cursor on it
(proven by the leaves after it); an entry left uncovered past the forced deadline lets anyone freeze. Every rule
of inbox.vy, forced.vy and the checkpoint's inbox checks has a test here that fails without it."""

import boa
import pytest

from ddx_offchain.protocol import inbox as ib
from ddx_offchain.protocol import requests as pr
from ddx_offchain.protocol.hashing import keccak256

from .conftest import DAY, FORCED_DEADLINE, HARNESS, MAIN, Ledger, events, factory

ROOT = keccak256(b"root")
ETHP = b"ETHP".ljust(32, b"\0")


def _withdraw_fields(token: str, amount: int) -> bytes:
    return pr.forced_fields(pr.WithdrawIntent(b"\x01" * 20, MAIN, bytes.fromhex(token[2:]), amount, 0, 0))[1]


def test_deposits_and_forced_requests_fold_into_the_protocol_hash(dx):
    alice, bob = boa.env.generate_address(), boa.env.generate_address()
    dx.deposit(alice, 100)
    fields = _withdraw_fields(dx.token.address, 40)
    seq = dx.exchange.force_request(pr.WithdrawIntent.TYPE_ID, fields, sender=bob)
    (event,) = events(dx.exchange, "ForcedRequest")
    assert (seq, event.seq, event.trader, event.request_type, event.deposits_before, event.fields) == (
        1, 1, bob, 5, 1, fields,
    )
    dx.deposit(alice, 7)
    token = bytes.fromhex(dx.token.address[2:])
    a = bytes.fromhex(alice[2:])
    expected = ib.EMPTY_INBOX.after([
        ib.deposit_leaf(1, a, MAIN, token, 100),
        ib.forced_leaf(1, bytes.fromhex(bob[2:]), 5, fields),
        ib.deposit_leaf(2, a, MAIN, token, 7),
    ])
    assert dx.inbox_head() == expected
    assert (dx.exchange.deposit_count(), dx.exchange.forced_count()) == (2, 1)


@pytest.mark.parametrize("request_type", [0, 7, 10, 255])
def test_an_unknown_request_type_is_refused(dx, request_type):
    with boa.reverts("forced: unknown request type"):
        dx.exchange.force_request(request_type, MAIN)


@pytest.mark.parametrize("request_type,words", [(5, 2), (5, 4), (6, 0), (1, 8), (1, 7), (3, 3)])
def test_fields_of_the_wrong_length_are_refused(dx, request_type, words):
    with boa.reverts("forced: fields do not match the request type"):
        dx.exchange.force_request(request_type, MAIN * words)
    assert dx.exchange.forced_count() == 0


def test_oversized_fields_do_not_even_decode(dx):
    with pytest.raises(Exception):
        dx.exchange.force_request(1, MAIN * 10)
    assert dx.exchange.forced_count() == 0


def test_every_request_type_can_be_forced_by_any_address_in_its_own_name(dx):
    someone = boa.env.generate_address()
    for cls in pr.FORCEABLE:
        words = len(cls.FIELDS) - 3
        dx.exchange.force_request(cls.TYPE_ID, MAIN * words, sender=someone)
        (event,) = events(dx.exchange, "ForcedRequest")
        assert event.trader == someone  # the caller: nobody can force a request in another trader's name
    assert dx.exchange.forced_count() == len(pr.FORCEABLE)
    with pytest.raises(Exception):  # a Batch's actions are dynamic: never forced
        dx.exchange.force_request(pr.Batch.TYPE_ID, MAIN * 2, sender=someone)


def test_no_forced_request_once_frozen(dx):
    boa.env.time_travel(seconds=7 * DAY)
    dx.exchange.freeze()
    with boa.reverts("checkpoints: frozen"):
        dx.exchange.force_request(6, MAIN)


# ---- checkpoints state their cursor -----------------------------------------------------------------------------


def _three_entries(dx):
    """Deposit, forced request, deposit; returns (cursor after each, leaves)."""
    alice = boa.env.generate_address()
    dx.deposit(alice, 100)
    first = dx.inbox_head()
    fields = _withdraw_fields(dx.token.address, 1)
    dx.exchange.force_request(5, fields, sender=alice)
    second = dx.inbox_head()
    dx.deposit(alice, 5)
    third = dx.inbox_head()
    a, token = bytes.fromhex(alice[2:]), bytes.fromhex(dx.token.address[2:])
    leaves = [ib.deposit_leaf(1, a, MAIN, token, 100), ib.forced_leaf(1, a, 5, fields), ib.deposit_leaf(2, a, MAIN, token, 5)]
    return (first, second, third), leaves


def test_a_cursor_behind_the_head_is_proven_by_the_leaves_after_it(dx):
    (first, second, third), leaves = _three_entries(dx)
    dx.submit(dx.checkpoint_message(ROOT, inbox=first), suffix=leaves[1:])
    assert dx.exchange.inbox_coverage()[0] == 1
    dx.submit(dx.checkpoint_message(ROOT, inbox=third))
    assert dx.exchange.inbox_coverage()[0] == 3


def test_a_cursor_without_the_leaves_after_it_is_refused(dx):
    (first, _, _), leaves = _three_entries(dx)
    with boa.reverts("inbox: cursor and leaves do not reach the head"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=first), suffix=leaves[1:2])
    with boa.reverts("inbox: cursor and leaves do not reach the head"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=first))


def test_a_cursor_that_is_not_on_the_chain_is_refused(dx):
    (first, _, third), leaves = _three_entries(dx)
    forged = ib.InboxCursor(first.deposits, first.forced, keccak256(b"another history"))
    with boa.reverts("inbox: cursor is not on the chain's inbox"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=forged), suffix=leaves[1:])
    # the head's counts with another hash (entries that differ from the chain's)
    with boa.reverts("inbox: cursor is not on the chain's inbox"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=ib.InboxCursor(2, 1, keccak256(b"x"))))
    # the right leaves with a kind byte changed: the counts or the hash no longer add up
    relabelled = [bytes([ib.KIND_DEPOSIT]) + leaves[1][1:], leaves[2]]
    with boa.reverts():
        dx.submit(dx.checkpoint_message(ROOT, inbox=first), suffix=relabelled)
    with boa.reverts("inbox: leaf of unknown kind"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=first), suffix=[b"\x07" + leaves[1][1:], leaves[2]])


def test_a_cursor_past_the_head_is_refused(dx):
    _, leaves = _three_entries(dx)
    head = dx.inbox_head()
    past = ib.InboxCursor(head.deposits + 1, head.forced, head.acc)
    with boa.reverts("inbox: cursor and leaves do not reach the head"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=past))


def test_a_cursor_going_backwards_is_refused(dx):
    (first, second, third), leaves = _three_entries(dx)
    dx.submit(dx.checkpoint_message(ROOT, inbox=second), suffix=leaves[2:])
    with boa.reverts("checkpoints: inbox cursor goes backwards"):
        dx.submit(dx.checkpoint_message(ROOT, inbox=first), suffix=leaves[1:])
    dx.submit(dx.checkpoint_message(ROOT, inbox=second), suffix=leaves[2:])  # standing still is fine


def test_the_signed_cursor_is_what_the_contract_checks(dx):
    """The cursor is part of the signed message: a relayer cannot swap in another one under the same signatures."""
    (first, _, third), leaves = _three_entries(dx)
    signed = dx.checkpoint_message(ROOT, inbox=first)
    quorum = om_sign(dx, signed)
    swapped = type(signed)(signed.operator_set_id, signed.epoch, signed.state_root, signed.l1_block_number,
                           signed.l1_block_hash, third)
    with boa.reverts("quorum: signature is not from its operator"):
        dx.submit(swapped, quorum=quorum)


def om_sign(dx, message):
    from ddx_offchain.protocol import operator_messages as om

    return om.sign_quorum(message, dx.domain, dx.operator_set, dx.keys[: dx.operator_set.threshold])


# ---- the forced deadline ----------------------------------------------------------------------------------------


def test_an_uncovered_entry_lets_anyone_freeze_after_the_deadline(dx):
    dx.checkpoint(ROOT)  # nothing pending
    censored = boa.env.generate_address()
    dx.exchange.force_request(6, MAIN, sender=censored)
    covered, pending, since = dx.exchange.inbox_coverage()
    assert (covered, pending) == (0, 1)
    boa.env.time_travel(seconds=FORCED_DEADLINE - 1)
    # checkpoints continue, but leave the forced request out (the cursor stays before it)
    dx.submit(dx.checkpoint_message(ROOT, inbox=ib.EMPTY_INBOX), suffix=[ib.forced_leaf(1, bytes.fromhex(censored[2:]), 6, MAIN)])
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()
    boa.env.time_travel(seconds=1)
    dx.exchange.freeze(sender=boa.env.generate_address())
    (event,) = events(dx.exchange, "Frozen")
    assert event.inbox_overdue
    assert dx.exchange.frozen()


def test_a_covering_checkpoint_before_the_deadline_keeps_the_exchange_open(dx):
    dx.exchange.force_request(6, MAIN, sender=boa.env.generate_address())
    boa.env.time_travel(seconds=FORCED_DEADLINE - 10)
    dx.checkpoint(ROOT)  # covers the head
    assert dx.exchange.inbox_coverage()[:2] == (1, 1)
    boa.env.time_travel(seconds=DAY)
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()


def test_partial_progress_does_not_restart_the_clock_of_the_oldest_entry(dx):
    """A checkpoint that covers some of the pending generation but not all of it leaves its deadline in place:
    a censoring quorum cannot push the deadline of an old entry back by covering the entries around it."""
    (first, second, third), leaves = _three_entries(dx)
    assert dx.exchange.inbox_coverage()[:2] == (0, 1)  # the first entry started the generation; the others wait
    boa.env.time_travel(seconds=60)
    dx.submit(dx.checkpoint_message(ROOT, inbox=first), suffix=leaves[1:])
    # the generation is covered: the next one holds the two entries left, from now
    covered, pending, since = dx.exchange.inbox_coverage()
    assert (covered, pending, since) == (1, 3, boa.env.evm.patch.timestamp)
    boa.env.time_travel(seconds=FORCED_DEADLINE // 2)
    dx.submit(dx.checkpoint_message(ROOT, inbox=second), suffix=leaves[2:])  # covers one of the two, not both
    assert dx.exchange.inbox_coverage() == (2, 3, since)
    boa.env.time_travel(seconds=FORCED_DEADLINE - FORCED_DEADLINE // 2 - 1)
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()
    boa.env.time_travel(seconds=1)
    dx.exchange.freeze()


def test_an_entry_arriving_with_nothing_pending_starts_its_own_deadline(dx):
    dx.checkpoint(ROOT)
    boa.env.time_travel(seconds=3 * FORCED_DEADLINE)  # a quiet exchange: no deadline runs without entries
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()
    dx.deposit(boa.env.generate_address(), 1)
    assert dx.exchange.inbox_coverage() == (0, 1, boa.env.evm.patch.timestamp)
    boa.env.time_travel(seconds=FORCED_DEADLINE - 1)
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()
    dx.checkpoint(ROOT)  # covered in time
    boa.env.time_travel(seconds=FORCED_DEADLINE)
    with boa.reverts("checkpoints: escape delay not over"):
        dx.exchange.freeze()


def test_the_forced_deadline_is_bounded_at_deployment():
    from .conftest import deploy_exchange, operator_keys

    keys = operator_keys(4)
    for deadline in (0, 365 * DAY + 1):
        with boa.reverts("checkpoints: forced deadline out of range"):
            deploy_exchange(keys, forced_deadline=deadline)


# ---- a contract wallet ------------------------------------------------------------------------------------------


def test_a_contract_wallet_deposits_forces_a_withdrawal_and_claims(dx):
    """A wallet with no key (Safe, ERC-4337 account) deposits, forces its withdrawal from L1 and, once a checkpoint
    covering it records the WITHDRAWAL leaf, is paid by a claim anyone relays."""
    owner = boa.env.generate_address()
    with boa.env.prank(owner):
        wallet = factory(HARNESS / "ContractWallet.vy").deploy()
    dx.token.mint(wallet.address, 1_000)
    wallet.approve(dx.token.address, dx.exchange.address, 2**256 - 1, sender=owner)
    wallet.deposit(dx.exchange.address, dx.token.address, 1_000, sender=owner)
    fields = _withdraw_fields(dx.token.address, 600)
    assert wallet.force(dx.exchange.address, 5, fields, sender=owner) == 1
    w, token = bytes.fromhex(wallet.address[2:]), bytes.fromhex(dx.token.address[2:])
    # the forced request is the wallet's own (the caller's), after its deposit
    assert dx.inbox_head() == ib.EMPTY_INBOX.after([ib.deposit_leaf(1, w, MAIN, token, 1_000), ib.forced_leaf(1, w, 5, fields)])
    with boa.reverts("wallet: not the owner"):
        wallet.force(dx.exchange.address, 5, fields, sender=boa.env.generate_address())
    # the engine applies it as the wallet's own WithdrawIntent: its state (BALANCE 400 of 1000, WITHDRAWAL 600)
    ledger = Ledger()
    ledger.set_balance(wallet.address, dx.token.address, 400, 1_000)
    ledger.set_withdrawable(wallet.address, dx.token.address, 600)
    epoch = dx.checkpoint(ledger.root())
    dx.exchange.claim(wallet.address, dx.token.address, 600, epoch,
                      ledger.withdrawal_siblings(wallet.address, dx.token.address), sender=boa.env.generate_address())
    assert dx.token.balanceOf(wallet.address) == 600
