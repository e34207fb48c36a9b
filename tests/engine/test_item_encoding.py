"""The engine's hand-built item values equal eth_abi's encoding byte for byte over random field values (the hot
encoders in ddx_offchain/engine/state.py build words with int.to_bytes and b"".join instead of eth_abi).

ENGINE_ENCODING_EXAMPLES turns up the number of hypothesis examples (default 150 per test)."""

import os

from engine_helpers import Driver, accepted, market_params, trader
from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.engine.commands import name32
from ddx_offchain.engine.state import K_BALANCE, K_WITHDRAWAL, Account, Market, Order, PairLeaf, Position, Trader
from ddx_offchain.protocol.items import Kind, item_key, item_value

EXAMPLES = int(os.environ.get("ENGINE_ENCODING_EXAMPLES", "150"))
addresses = st.binary(min_size=20, max_size=20)
words = st.binary(min_size=32, max_size=32)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
int256 = st.integers(min_value=-(2**255), max_value=2**255 - 1)
MARKET = Market(market_params())


@settings(max_examples=EXAMPLES, deadline=None)
@given(order_id=words, trader=addresses, strategy=words, side=st.integers(0, 1), order_type=st.integers(0, 255),
       price=uint256, remaining=st.integers(1, 2**256 - 1), original=uint256, seq=st.integers(0, 2**64 - 1),
       reduce_only=st.booleans(), client_order_id=words, expiry=st.integers(0, 2**64 - 1))
def test_order_value_equals_eth_abi(order_id, trader, strategy, side, order_type, price, remaining, original, seq,
                                    reduce_only, client_order_id, expiry):
    order = Order(order_id, Account(trader, strategy, trader), MARKET, side, order_type, price, remaining, original,
                  seq, reduce_only, client_order_id, expiry)
    key, value = order.item()
    assert key == item_key(Kind.ORDER, ["bytes32"], [order_id])
    assert value == item_value(
        Kind.ORDER,
        ["bytes32", "address", "bytes32", "bytes32", "uint8", "uint8", "uint256", "uint256", "uint256", "uint64",
         "bool", "bytes32", "uint64"],
        [order_id, trader, strategy, MARKET.id, side, order_type, price, remaining, original, seq, reduce_only,
         client_order_id, expiry])


def test_a_filled_or_cancelled_order_has_no_value():
    order = Order(bytes(32), Account(bytes(20), bytes(32), bytes(20)), MARKET, 0, 0, 1, 0, 5, 1)
    assert order.item()[1] is None


@settings(max_examples=EXAMPLES, deadline=None)
@given(trader=addresses, strategy=words, size=int256.filter(bool), cost=int256, realized=int256)
def test_position_value_equals_eth_abi(trader, strategy, size, cost, realized):
    pos = Position(Account(trader, strategy, trader), MARKET)
    pos.size, pos.cost, pos.realized = size, cost, realized
    key, value = pos.item()
    assert key == item_key(Kind.POSITION, ["address", "bytes32", "bytes32"], [trader, strategy, MARKET.id])
    assert value == item_value(Kind.POSITION, ["address", "bytes32", "bytes32", "int256", "int256", "int256"],
                               [trader, strategy, MARKET.id, size, cost, realized])


@settings(max_examples=EXAMPLES, deadline=None)
@given(trader=addresses, strategy=words, token=addresses, collateral=int256)
def test_strategy_and_fund_values_equal_eth_abi(trader, strategy, token, collateral):
    a = Account(trader, strategy, token)
    a.collateral = collateral
    assert a.item() == (
        item_key(Kind.STRATEGY, ["address", "bytes32", "address"], [trader, strategy, token]),
        item_value(Kind.STRATEGY, ["address", "bytes32", "address", "int256"], [trader, strategy, token, collateral]),
    )
    fund = Account(bytes(20), name32("insurance"), token, is_fund=True)
    fund.collateral = collateral
    assert fund.item() == (item_key(Kind.INSURANCE_FUND, ["address"], [token]),
                           item_value(Kind.INSURANCE_FUND, ["address", "int256"], [token, collateral]))


@settings(max_examples=EXAMPLES, deadline=None)
@given(trader=addresses, token=addresses, amount=uint256, deposited=uint256, strategies=st.integers(0, 40))
def test_pair_leaves_and_trader_values_equal_eth_abi(trader, token, amount, deposited, strategies):
    w = PairLeaf(K_WITHDRAWAL, trader, token)
    w.amount = amount
    assert w.item() == (item_key(Kind.WITHDRAWAL, ["address", "address"], [trader, token]),
                        item_value(Kind.WITHDRAWAL, ["address", "address", "uint256"], [trader, token, amount]))
    b = PairLeaf(K_BALANCE, trader, token)
    b.amount, b.deposited = amount, deposited
    expected = item_value(Kind.BALANCE, ["address", "address", "uint256", "uint256"],
                          [trader, token, amount, deposited])
    assert b.item()[1] == (expected if amount or deposited else None)
    t = Trader(trader)
    t.strategies.update(i.to_bytes(32, "big") for i in range(strategies))
    t.created = strategies // 2
    assert t.item() == (item_key(Kind.TRADER, ["address"], [trader]),
                        item_value(Kind.TRADER, ["address", "uint256", "uint256"], [trader, strategies, strategies // 2]))


def test_flush_skips_orders_gone_before_any_root_and_deletes_those_a_root_saw():
    d = Driver()
    who = trader(1)
    d.deposit(who, 10**12)
    d.price(2_000_000_000)
    early = d.order(who, 0, 1_900_000_000, 1_000)[-1].order_id
    d.engine.state_root()
    order = d.engine.orders[early]
    assert order.in_tree and order._key in d.engine.tree
    late = d.order(who, 0, 1_800_000_000, 1_000)[-1].order_id
    late_order = d.engine.orders[late]
    assert accepted(d.cancel(who, early)) and accepted(d.cancel(who, late))
    d.engine.state_root()
    assert not order.in_tree and order._key not in d.engine.tree
    assert late_order._key is None  # never written, so never hashed
    assert d.engine.all_items() == list(d.engine.tree.items())
