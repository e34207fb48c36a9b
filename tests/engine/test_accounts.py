"""Deposits (sequenced chain blocks), strategies, withdraw intents and the realized-PnL rules."""

import pytest
from engine_helpers import (
    ETHP,
    USDC,
    Driver,
    accepted,
    conservation,
    items_except_cursors,
    of_type,
    reason,
    trader,
    usd,
)

from ddx_offchain.engine import Engine, GenesisConfig
from ddx_offchain.engine.commands import (
    BUY,
    MAIN_STRATEGY,
    SELL,
    ChainBlock,
    CreateStrategy,
    Deposit,
    ListToken,
    WithdrawIntent,
    name32,
)
from ddx_offchain.engine.reasons import Reject
from ddx_offchain.engine.updates import DepositCredited, DepositIgnored, StrategyCreated, WithdrawalUpdate

A, B = trader(1), trader(2)
P = usd(2000)
TICK = 10_000
OTHER = bytes.fromhex("dac17f958d2ee523a2206206994597c13d831ec7")


def block(d, number, *deposits):
    return d.apply(ChainBlock(d.rid(), number, number.to_bytes(32, "big"), tuple(deposits)))


def test_deposits_credit_in_sequence_and_default_to_main():
    d = Driver()
    ups = block(d, 5, Deposit(1, A, b"\x00" * 32, USDC, 10), Deposit(2, A, name32("x"), USDC, 20))
    assert accepted(ups)
    assert [(u.seq, u.strategy) for u in of_type(ups, DepositCredited)] == [(1, MAIN_STRATEGY), (2, name32("x"))]
    assert len(of_type(ups, StrategyCreated)) == 2
    e = d.engine
    assert e.accounts[A + MAIN_STRATEGY + USDC].collateral == 10
    assert e.deposit_seq == 2 and e.block_number == 5
    assert e.ledgers[USDC].deposited == 30


@pytest.mark.parametrize("deposits,number,why", [
    ((Deposit(3, A, MAIN_STRATEGY, USDC, 1),), 6, Reject.DEPOSIT_SEQUENCE_GAP),
    ((Deposit(1, A, MAIN_STRATEGY, USDC, 1),), 6, Reject.DEPOSIT_REPEATED),
    ((Deposit(2, A, MAIN_STRATEGY, USDC, 1), Deposit(2, A, MAIN_STRATEGY, USDC, 1)), 6, Reject.DEPOSIT_REPEATED),
    ((Deposit(2, A, MAIN_STRATEGY, USDC, 0),), 6, Reject.BAD_AMOUNT),
    ((Deposit(2, b"\x00" * 20, MAIN_STRATEGY, USDC, 1),), 6, Reject.MALFORMED),
    ((), 5, Reject.BLOCK_NOT_NEWER),
])
def test_bad_blocks_are_refused_whole(deposits, number, why):
    d = Driver()
    block(d, 5, Deposit(1, A, MAIN_STRATEGY, USDC, 1))
    before = items_except_cursors(d.engine)
    # a good deposit first in the block must not be credited when a later one is refused
    assert reason(block(d, number, *deposits)) == why
    assert items_except_cursors(d.engine) == before


def test_a_deposit_of_an_unlisted_token_is_sequenced_uncredited_and_stalls_no_one():
    """Security review finding 6: a token allow-listed on-chain before the engine listed it used to refuse its
    block, and with it every later deposit, forever. Now it is skipped (credited to no one, the escape hatch returns
    it) and the deposits around it are credited."""
    d = Driver()
    before_ledgers = set(d.engine.ledgers)
    ups = block(d, 1, Deposit(1, A, MAIN_STRATEGY, USDC, 3), Deposit(2, A, MAIN_STRATEGY, OTHER, 5),
                Deposit(3, A, MAIN_STRATEGY, USDC, 4))
    assert accepted(ups) and d.engine.deposit_seq == 3
    assert [(u.seq, u.amount) for u in of_type(ups, DepositIgnored)] == [(2, 5)]
    assert [u.seq for u in of_type(ups, DepositCredited)] == [1, 3]
    assert d.engine.accounts[A + MAIN_STRATEGY + USDC].collateral == 7 and set(d.engine.ledgers) == before_ledgers
    assert A + OTHER not in d.engine.balances  # no leaf counts it: the escape hatch returns it
    assert accepted(d.apply(ListToken(d.rid(), OTHER)))
    assert reason(d.apply(ListToken(d.rid(), OTHER))) == Reject.TOKEN_EXISTS
    assert accepted(block(d, 2, Deposit(4, A, MAIN_STRATEGY, OTHER, 5)))  # listed now: credited
    assert conservation(d.engine) == {USDC: 0, OTHER: 0}


def test_create_strategy_and_its_limits():
    d = Driver(max_strategies=2)
    assert accepted(d.apply(CreateStrategy(d.rid(), A, name32("one"))))
    assert reason(d.apply(CreateStrategy(d.rid(), A, name32("one")))) == Reject.STRATEGY_EXISTS
    assert accepted(d.apply(CreateStrategy(d.rid(), A, name32("two"))))
    assert reason(d.apply(CreateStrategy(d.rid(), A, name32("three")))) == Reject.TOO_MANY_STRATEGIES
    assert reason(d.apply(CreateStrategy(d.rid(), A, b"\x00" * 32))) == Reject.MALFORMED
    assert reason(d.apply(CreateStrategy(d.rid(), b"\x00" * 20, name32("x")))) == Reject.MALFORMED
    # deposits never refuse: a third strategy appears through a deposit
    d.deposit(A, 5, strategy=name32("three"))
    assert len(d.engine.traders[A].strategies) == 3


def test_strategies_are_separate_margin_accounts():
    d = Driver()
    d.deposit(A, usd(1_000), strategy=name32("rich"))
    d.apply(CreateStrategy(d.rid(), A, name32("poor")))
    d.price(P)
    assert reason(d.order(A, BUY, P, 1_000, strategy=name32("poor"))) == Reject.INSUFFICIENT_MARGIN
    assert accepted(d.order(A, BUY, P, 1_000, strategy=name32("rich")))


def test_withdraw_moves_free_collateral_to_the_cumulative_leaf():
    d = Driver()
    d.deposit(A, usd(1_000))
    ups = d.withdraw(A, usd(300))
    (w,) = of_type(ups, WithdrawalUpdate)
    assert (w.amount, w.cumulative) == (usd(300), usd(300))
    ups = d.withdraw(A, usd(200))
    assert of_type(ups, WithdrawalUpdate)[0].cumulative == usd(500)
    assert d.engine.withdrawals[A + USDC].amount == usd(500)
    assert reason(d.withdraw(A, usd(501))) == Reject.INSUFFICIENT_FREE_COLLATERAL
    assert reason(d.withdraw(A, 0)) == Reject.BAD_AMOUNT
    assert reason(d.withdraw(A, 1, token=OTHER)) == Reject.UNKNOWN_TOKEN
    assert reason(d.withdraw(A, 1, strategy=name32("nope"))) == Reject.UNKNOWN_STRATEGY
    assert conservation(d.engine) == {USDC: 0}


def test_withdraw_keeps_initial_margin_and_excludes_unrealized_profit():
    d = Driver()
    d.deposit(A, usd(1_000))
    d.deposit(B, usd(10_000))
    d.price(P)
    d.order(B, SELL, P, 1_000_000)
    d.order(A, BUY, P, 1_000_000)  # A long 1 contract at 2,000; pays 1 USDC taker fee
    a = d.engine.accounts[A + MAIN_STRATEGY + USDC]
    assert a.collateral == usd(999)
    d.price(usd(2100))  # A +100 unrealized; IM now 210
    free = usd(999) - usd(210)
    assert reason(d.withdraw(A, free + 1)) == Reject.INSUFFICIENT_FREE_COLLATERAL
    assert accepted(d.withdraw(A, free))
    d.price(usd(1900))  # -100 unrealized: counts against what is free (now negative)
    assert reason(d.withdraw(A, 1)) == Reject.INSUFFICIENT_FREE_COLLATERAL


def test_realized_pnl_on_partial_close_is_rounded_down():
    d = Driver()
    d.deposit(A, usd(10_000))
    d.deposit(B, usd(10_000))
    d.price(P)
    # buy 3 lots at three prices: cost not divisible by the size
    for price in (P, P, P + TICK):
        d.order(B, SELL, price, 1_000)
        d.order(A, BUY, price, 1_000)
    pos = d.engine.accounts[A + MAIN_STRATEGY + USDC].positions[ETHP]
    assert (pos.size, pos.cost) == (3_000, 6_000_010)
    collateral = d.engine.accounts[A + MAIN_STRATEGY + USDC].collateral
    d.order(B, BUY, P + TICK, 1_000)
    d.order(A, SELL, P + TICK, 1_000)  # close a third at 2,000.01
    # remaining cost floor(6_000_010 * 2 / 3) = 4_000_006; realized = 4_000_006 - (6_000_010 - 2_000_010) = 6
    # (the exact 6.67 is rounded down; the 0.67 stays in the cost basis)
    assert (pos.size, pos.cost, pos.realized) == (2_000, 4_000_006, 6)
    fee = -(-2_000_010 * 5 // 10_000)
    assert d.engine.accounts[A + MAIN_STRATEGY + USDC].collateral == collateral - fee + 6
    assert conservation(d.engine) == {USDC: 0}


def test_flip_realizes_the_closed_part_and_opens_the_rest():
    d = Driver()
    d.deposit(A, usd(10_000))
    d.deposit(B, usd(10_000))
    d.price(P)
    d.order(B, SELL, P, 1_000)
    d.order(A, BUY, P, 1_000)
    d.order(B, BUY, P + 10 * TICK, 3_000)
    d.order(A, SELL, P + 10 * TICK, 3_000)  # flips A to short 2_000 at 2,000.10
    pos = d.engine.accounts[A + MAIN_STRATEGY + USDC].positions[ETHP]
    assert (pos.size, pos.cost, pos.realized) == (-2_000, -4_000_200, 0)
    assert conservation(d.engine) == {USDC: 0}


def test_genesis_validation():
    from ddx_offchain.engine import ConfigError

    with pytest.raises(ConfigError):
        Engine(GenesisConfig(tokens=()))
    with pytest.raises(ConfigError):
        Engine(GenesisConfig(tokens=(USDC, USDC)))
    with pytest.raises(ConfigError):
        Engine(GenesisConfig(tokens=(USDC,), max_open_orders=0))


def test_withdraw_intent_with_wrong_types_is_malformed():
    d = Driver()
    d.deposit(A, usd(1))
    assert reason(d.apply(WithdrawIntent(d.rid(), A, MAIN_STRATEGY, USDC, "5"))) == Reject.BAD_AMOUNT


def test_no_request_can_act_as_the_insurance_fund():
    from ddx_offchain.engine.commands import PlaceOrder
    from ddx_offchain.engine.state import FUND_STRATEGY, FUND_TRADER

    d = Driver()
    d.deposit(A, usd(1_000))
    d.price(P)
    fund = d.engine.ledgers[USDC].fund
    fund.collateral = usd(50)  # as if capitalized
    assert reason(d.apply(WithdrawIntent(d.rid(), FUND_TRADER, FUND_STRATEGY, USDC, 1))) == Reject.MALFORMED
    assert reason(d.apply(PlaceOrder(d.rid(), FUND_TRADER, FUND_STRATEGY, ETHP, BUY, 0, P, 1_000, False))) \
        == Reject.MALFORMED
    assert reason(d.apply(CreateStrategy(d.rid(), A, b"short"))) == Reject.MALFORMED
    assert fund.collateral == usd(50)


def test_deposits_to_new_strategies_never_use_up_the_traders_own_limit():
    """Security review finding 4: deposit_to is open to anyone; strategies it opens must not count toward the
    trader's max_strategies, or 16 one-unit deposits would block the trader's own CreateStrategy forever."""
    from ddx_offchain.engine import Engine
    from ddx_offchain.engine.commands import CreateStrategy, name32
    from ddx_offchain.engine.reasons import Reject

    d = Driver(max_strategies=2)
    victim = trader(9)
    for i in range(5):  # a squatter's deposits into five new strategies of the victim's
        assert accepted(d.deposit(victim, 1, strategy=name32(f"squat{i}")))
    assert len(d.engine.traders[victim].strategies) == 5
    for name in ("mine1", "mine2"):
        assert accepted(d.apply(CreateStrategy(d.rid(), victim, name32(name))))
    assert reason(d.apply(CreateStrategy(d.rid(), victim, name32("mine3")))) == Reject.TOO_MANY_STRATEGIES
    assert reason(d.apply(CreateStrategy(d.rid(), victim, name32("squat0")))) == Reject.STRATEGY_EXISTS
    restored = Engine.restore(d.engine.snapshot())  # the count is state: it survives a snapshot
    assert restored.traders[victim].created == 2 and restored.state_root() == d.engine.state_root()
