"""Deposits and withdrawal claims (custody.vy): events, proofs from the real state tree, and the attacks."""

import boa
import pytest

from ddx_offchain.protocol import items
from ddx_offchain.protocol.hashing import keccak256, leaf_hash

from .conftest import HARNESS, MAIN, Ledger, deploy_exchange, events, factory

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def trader():
    return boa.env.generate_address()


# ---- deposits ---------------------------------------------------------------------------------------------


def test_deposit_credits_default_strategy_with_sequence(dx, trader):
    dx.fund(trader, 1_000)
    dx.exchange.deposit(dx.token.address, 600, sender=trader)
    (event,) = events(dx.exchange, "Deposit")
    assert (event.seq, event.trader, event.strategy, event.token, event.amount, event.depositor) == (
        1, trader, MAIN, dx.token.address, 600, trader,
    )
    assert MAIN == b"main" + b"\0" * 28
    assert dx.token.balanceOf(dx.exchange.address) == 600
    assert dx.token.balanceOf(trader) == 400
    assert dx.exchange.deposit_count() == 1


def test_deposit_to_names_trader_and_strategy_and_sequence_increases(dx, trader):
    payer = boa.env.generate_address()
    dx.fund(payer, 1_000)
    strategy = b"hedge".ljust(32, b"\0")
    seqs = []
    for amount in (100, 200, 300):
        dx.exchange.deposit_to(trader, strategy, dx.token.address, amount, sender=payer)
        (event,) = events(dx.exchange, "Deposit")
        assert (event.trader, event.strategy, event.amount, event.depositor) == (trader, strategy, amount, payer)
        seqs.append(event.seq)
    assert seqs == [1, 2, 3]
    dx.exchange.deposit(dx.token.address, 1, sender=payer)
    assert events(dx.exchange, "Deposit")[0].seq == 4


def test_deposit_of_a_token_not_allowed(dx, trader):
    other = factory(str(HARNESS.parent.parent / "contracts/mocks/MockERC20.vy")).deploy("Other", "OTH", 18)
    other.mint(trader, 10)
    other.approve(dx.exchange.address, 10, sender=trader)
    with boa.reverts("custody: token not allowed"):
        dx.exchange.deposit(other.address, 10, sender=trader)
    assert dx.exchange.deposit_count() == 0


@pytest.mark.parametrize("field,reason", [
    ("amount", "custody: zero amount"),
    ("trader", "custody: zero trader"),
    ("strategy", "custody: zero strategy"),
])
def test_deposit_refuses_zero_fields(dx, trader, field, reason):
    dx.fund(trader, 10)
    args = {"trader": trader, "strategy": MAIN, "amount": 10}
    args[field] = {"amount": 0, "trader": ZERO, "strategy": b"\0" * 32}[field]
    with boa.reverts(reason):
        dx.exchange.deposit_to(args["trader"], args["strategy"], dx.token.address, args["amount"], sender=trader)


def test_deposit_without_allowance_moves_nothing(dx, trader):
    dx.token.mint(trader, 10)
    with boa.reverts("erc20: insufficient allowance"):
        dx.exchange.deposit(dx.token.address, 10, sender=trader)
    assert dx.exchange.deposit_count() == 0


def test_deposits_are_counted_per_trader_and_token(dx, trader):
    dx.deposit(trader, 30)
    dx.fund(trader, 12)
    dx.exchange.deposit_to(trader, b"alt".ljust(32, b"\0"), dx.token.address, 12, sender=trader)
    assert dx.exchange.deposited(trader, dx.token.address) == 42  # every strategy of the pair
    assert dx.exchange.deposited(boa.env.generate_address(), dx.token.address) == 0
    assert dx.exchange.claimed(trader, dx.token.address) == 0  # the packed slot's other half is untouched


def test_deposits_of_a_pair_stay_below_2_128(dx, trader):
    """The per-pair slot packs deposited << 128 | claimed: a deposit that would overflow it is refused."""
    dx.deposit(trader, 2**128 - 2)
    dx.fund(trader, 2)
    with boa.reverts("custody: deposit too large"):
        dx.exchange.deposit(dx.token.address, 2, sender=trader)
    dx.exchange.deposit(dx.token.address, 1, sender=trader)
    assert dx.exchange.deposited(trader, dx.token.address) == 2**128 - 1


def test_a_claim_above_2_128_is_refused(dx, trader):
    ledger = Ledger()
    ledger.set_withdrawable(trader, dx.token.address, 2**128)
    epoch = dx.checkpoint(ledger.root())
    with boa.reverts("custody: amount too large"):
        dx.exchange.claim(trader, dx.token.address, 2**128, epoch, ledger.withdrawal_siblings(trader, dx.token.address))


def test_deployed_code_stays_under_the_eip170_limit(dx):
    assert len(dx.exchange.bytecode) <= 24_576


def test_transfer_returning_false_is_refused():
    token = factory(HARNESS / "FalseToken.vy").deploy()
    from .conftest import make_deployment
    with boa.env.anchor():
        dx = make_deployment()
        exchange = deploy_exchange(dx.keys, 3, tokens=[token])
        depositor = boa.env.generate_address()
        token.mint(depositor, 100)
        with boa.reverts("custody: transferFrom failed"):
            exchange.deposit(token.address, 100, sender=depositor)
        token.set_honest(True)
        exchange.deposit(token.address, 100, sender=depositor)
        token.set_honest(False)
        dx.exchange = exchange
        ledger = Ledger()
        ledger.set_withdrawable(depositor, token.address, 40)
        epoch = dx.checkpoint(ledger.root())
        with boa.reverts("custody: transfer failed"):
            exchange.claim(depositor, token.address, 40, epoch, ledger.withdrawal_siblings(depositor, token.address))
        assert exchange.claimed(depositor, token.address) == 0


# ---- claims -----------------------------------------------------------------------------------------------


def _claimable(dx, trader, amount, ledger=None):
    ledger = ledger or Ledger()
    dx.deposit(trader, amount)
    ledger.set_withdrawable(trader, dx.token.address, amount)
    return ledger, dx.checkpoint(ledger.root())


def test_claim_with_a_state_tree_proof_pays_the_trader(dx, trader):
    ledger, epoch = _claimable(dx, trader, 700)
    relayer = boa.env.generate_address()  # anyone relays; the tokens still go to the trader
    siblings = ledger.withdrawal_siblings(trader, dx.token.address)
    assert len(siblings) > 0
    paid = dx.exchange.claim(trader, dx.token.address, 700, epoch, siblings, sender=relayer)
    (event,) = events(dx.exchange, "Claim")
    assert (event.trader, event.token, event.epoch, event.cumulative, event.paid, event.unpaid) == (
        trader, dx.token.address, epoch, 700, 700, 0,
    )
    assert paid == 700
    assert dx.token.balanceOf(trader) == 700
    assert dx.token.balanceOf(relayer) == 0
    assert dx.exchange.claimed(trader, dx.token.address) == 700


def test_claim_of_the_only_item_in_the_tree(dx, trader):
    ledger, epoch = _claimable(dx, trader, 5, ledger=Ledger(filler=0))
    assert ledger.withdrawal_siblings(trader, dx.token.address) == []
    dx.exchange.claim(trader, dx.token.address, 5, epoch, [])
    assert dx.token.balanceOf(trader) == 5


def test_cumulative_claims_pay_the_difference_and_never_twice(dx, trader):
    ledger, first = _claimable(dx, trader, 1_000)
    ledger.set_withdrawable(trader, dx.token.address, 300)
    older = dx.checkpoint(ledger.root())
    older_siblings = ledger.withdrawal_siblings(trader, dx.token.address)
    ledger.set_withdrawable(trader, dx.token.address, 800)
    newer = dx.checkpoint(ledger.root())
    newer_siblings = ledger.withdrawal_siblings(trader, dx.token.address)
    assert dx.exchange.claim(trader, dx.token.address, 300, older, older_siblings) == 300
    with boa.reverts("custody: nothing to claim"):  # the same checkpoint again
        dx.exchange.claim(trader, dx.token.address, 300, older, older_siblings)
    assert dx.exchange.claim(trader, dx.token.address, 800, newer, newer_siblings) == 500
    with boa.reverts("custody: nothing to claim"):  # double claim across two checkpoints
        dx.exchange.claim(trader, dx.token.address, 300, older, older_siblings)
    with boa.reverts("custody: nothing to claim"):
        dx.exchange.claim(trader, dx.token.address, 800, newer, newer_siblings)
    assert dx.token.balanceOf(trader) == 800


def test_claim_against_an_unknown_epoch(dx, trader):
    ledger, epoch = _claimable(dx, trader, 10)
    siblings = ledger.withdrawal_siblings(trader, dx.token.address)
    with boa.reverts("custody: unknown epoch"):
        dx.exchange.claim(trader, dx.token.address, 10, epoch + 1, siblings)
    with boa.reverts("custody: unknown epoch"):
        dx.exchange.claim(trader, dx.token.address, 10, 0, siblings)


def test_claim_of_more_than_proven(dx, trader):
    ledger, epoch = _claimable(dx, trader, 10)
    with boa.reverts("custody: invalid proof"):
        dx.exchange.claim(trader, dx.token.address, 11, epoch, ledger.withdrawal_siblings(trader, dx.token.address))


def test_proof_for_another_trader_or_token(dx, trader):
    victim = boa.env.generate_address()
    ledger, epoch = _claimable(dx, victim, 50)
    siblings = ledger.withdrawal_siblings(victim, dx.token.address)
    with boa.reverts("custody: invalid proof"):  # the victim's proof, claimed for someone else
        dx.exchange.claim(trader, dx.token.address, 50, epoch, siblings)
    other_token = boa.env.generate_address()
    with boa.reverts("custody: invalid proof"):  # ... or for another token
        dx.exchange.claim(victim, other_token, 50, epoch, siblings)
    # and a BALANCE leaf is not a WITHDRAWAL leaf
    ledger.set_balance(trader, dx.token.address, 50, 50)
    epoch = dx.checkpoint(ledger.root())
    with boa.reverts("custody: invalid proof"):
        dx.exchange.claim(trader, dx.token.address, 50, epoch, ledger.balance_siblings(trader, dx.token.address))


def test_internal_node_presented_as_a_leaf(dx, trader):
    ledger, epoch = _claimable(dx, trader, 10)
    proof = ledger.tree.prove(items.withdrawal_key(trader, dx.token.address))
    assert len(proof.siblings) >= 2
    # Cut the proof one level short: the "leaf" would have to hash to the internal node at that level,
    # which a leaf hash (0x00 prefix) never does for a node hash (0x01 prefix).
    with boa.reverts("custody: invalid proof"):
        dx.exchange.claim(trader, dx.token.address, 10, epoch, list(proof.siblings[1:]))
    # ... and the siblings of a real internal node never verify as a leaf either
    node_as_value = leaf_hash(proof.key, proof.value_hash)
    assert keccak256(items.withdrawal_value(trader, dx.token.address, 10)) != node_as_value


def test_truncated_or_padded_proofs_fail(dx, trader):
    ledger, epoch = _claimable(dx, trader, 10)
    siblings = ledger.withdrawal_siblings(trader, dx.token.address)
    with boa.reverts("custody: invalid proof"):
        dx.exchange.claim(trader, dx.token.address, 10, epoch, siblings + [b"\0" * 32])
    with boa.reverts():
        dx.exchange.claim(trader, dx.token.address, 10, epoch, [b"\x01" * 32] * 257)  # over the 256 bound


def test_claims_stay_open_for_delisted_tokens(dx, trader):
    # delisting is a governance change (tests in test_governance); here: claims never read the allow-list
    ledger, epoch = _claimable(dx, trader, 10)
    dx.exchange.claim(trader, dx.token.address, 10, epoch, ledger.withdrawal_siblings(trader, dx.token.address))


# ---- rate limits ------------------------------------------------------------------------------------------


def test_rate_limit_pays_partially_then_refuses_then_refills():
    from .conftest import make_deployment

    with boa.env.anchor():
        dx = make_deployment(capacity=1_000, period=3_600)
        trader = boa.env.generate_address()
        ledger, epoch = _claimable(dx, trader, 2_500)
        siblings = ledger.withdrawal_siblings(trader, dx.token.address)
        assert dx.exchange.available_to_pay(dx.token.address) == 1_000
        assert dx.exchange.claim(trader, dx.token.address, 2_500, epoch, siblings) == 1_000
        (event,) = events(dx.exchange, "Claim")
        assert (event.paid, event.unpaid) == (1_000, 1_500)
        with boa.reverts("custody: rate limit exhausted"):
            dx.exchange.claim(trader, dx.token.address, 2_500, epoch, siblings)
        boa.env.time_travel(seconds=1_800)  # half a period refills half the capacity
        assert dx.exchange.available_to_pay(dx.token.address) == 500
        assert dx.exchange.claim(trader, dx.token.address, 2_500, epoch, siblings) == 500
        boa.env.time_travel(seconds=10 * 3_600)  # never more than the capacity at once
        assert dx.exchange.available_to_pay(dx.token.address) == 1_000
        assert dx.exchange.claim(trader, dx.token.address, 2_500, epoch, siblings) == 1_000
        assert dx.token.balanceOf(trader) == 2_500
        assert dx.exchange.claimed(trader, dx.token.address) == 2_500


def test_rate_limit_is_per_token_and_shared_by_traders():
    from .conftest import make_deployment

    with boa.env.anchor():
        dx = make_deployment(capacity=100, period=3_600)
        alice, bob = boa.env.generate_address(), boa.env.generate_address()
        ledger = Ledger()
        for who in (alice, bob):
            dx.deposit(who, 80)
            ledger.set_withdrawable(who, dx.token.address, 80)
        epoch = dx.checkpoint(ledger.root())
        assert dx.exchange.claim(alice, dx.token.address, 80, epoch, ledger.withdrawal_siblings(alice, dx.token.address)) == 80
        assert dx.exchange.claim(bob, dx.token.address, 80, epoch, ledger.withdrawal_siblings(bob, dx.token.address)) == 20


# ---- reentrancy -------------------------------------------------------------------------------------------


def _hostile_setup(dx, trader, amount):
    token = factory(HARNESS / "ReentrantToken.vy").deploy()
    exchange = deploy_exchange(dx.keys, 3, tokens=[token])
    dx.exchange = exchange
    token.mint(exchange.address, 10 * amount)  # the exchange holds plenty: a second payout would succeed
    ledger = Ledger()
    ledger.set_withdrawable(trader, token.address, amount)
    epoch = dx.checkpoint(ledger.root())
    return token, exchange, ledger, epoch


def test_reentrant_claim_from_the_token_is_refused(dx, trader):
    token, exchange, ledger, epoch = _hostile_setup(dx, trader, 100)
    siblings = ledger.withdrawal_siblings(trader, token.address)
    token.arm(exchange.address, 1, trader, 100, epoch, siblings)
    with boa.reverts():
        exchange.claim(trader, token.address, 100, epoch, siblings)
    assert token.balanceOf(trader) == 0
    assert exchange.claimed(trader, token.address) == 0
    token.arm(exchange.address, 0, trader, 0, 0, [])
    exchange.claim(trader, token.address, 100, epoch, siblings)
    assert token.balanceOf(trader) == 100


def test_reentrant_deposit_is_refused_by_the_lock(dx, trader):
    # a deposit re-entered from inside a deposit is harmless for the books, so only the lock can stop it:
    # this test fails if the reentrancy guard is removed
    token = factory(HARNESS / "ReentrantToken.vy").deploy()
    exchange = deploy_exchange(dx.keys, 3, tokens=[token])
    token.mint(token.address, 100)
    token.approve(exchange.address, 100, sender=token.address)
    token.mint(trader, 100)
    token.approve(exchange.address, 100, sender=trader)
    token.arm(exchange.address, 2, trader, 0, 0, [])
    with boa.reverts():
        exchange.deposit(token.address, 50, sender=trader)
    assert exchange.deposit_count() == 0


def test_internal_node_cannot_verify_as_a_leaf_in_the_vyper_verifier(dx, trader):
    """Present an internal node as a leaf to the Vyper verifier: the root R = H(0x01 ‖ A ‖ B) of a real tree, offered
    as the one-item tree whose leaf has key A and value hash B. The leaf prefix 0x00 makes that leaf hash to
    H(0x00 ‖ A ‖ B) ≠ R; without the domain separation it would verify (and so would any internal node whose left
    child's bits spell its path)."""
    from ddx_offchain.protocol.hashing import node_hash
    from ddx_offchain.protocol.proof import fold_to_root, key_bit

    harness = factory(HARNESS / "StateProofHarness.vy").deploy()
    ledger = Ledger(filler=64)
    ledger.set_withdrawable(trader, dx.token.address, 10)
    root = ledger.root()
    proof = ledger.tree.prove(items.withdrawal_key(trader, dx.token.address))
    assert harness.root_of_inclusion(proof.key, proof.value_hash, list(proof.siblings)) == root
    # the root's two children: our path's child at depth 1, and the top sibling
    ours = fold_to_root(proof.key, leaf_hash(proof.key, proof.value_hash), proof.siblings[:-1])
    left, right = (proof.siblings[-1], ours) if key_bit(proof.key, 0) else (ours, proof.siblings[-1])
    assert node_hash(left, right) == root
    assert harness.root_of_inclusion(left, right, []) != root


def test_frequent_small_claims_lose_no_refill():
    """Security review finding 7: the bucket's clock restarted at each payout and the refill was rounded down, so a
    claim every 19 s against capacity 10 per 100 s paid 100 over 1,900 s instead of about 190. The fraction of a
    unit earned is now carried to the next refill."""
    from .conftest import make_deployment

    with boa.env.anchor():
        dx = make_deployment(capacity=10, period=100)
        trader = boa.env.generate_address()
        ledger, epoch = _claimable(dx, trader, 1_000)
        siblings = ledger.withdrawal_siblings(trader, dx.token.address)
        paid = dx.exchange.claim(trader, dx.token.address, 1_000, epoch, siblings)  # the full bucket: 10
        for _ in range(100):
            boa.env.time_travel(seconds=19)
            paid += dx.exchange.claim(trader, dx.token.address, 1_000, epoch, siblings)
        # 1,900 s at 10 per 100 s refill 190 (+10 at the start); the rounding may cost at most a unit
        assert 199 <= paid <= 200
        boa.env.time_travel(seconds=10_000)
        assert dx.exchange.available_to_pay(dx.token.address) == 10  # never above the capacity
