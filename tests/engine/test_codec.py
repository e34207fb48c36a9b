"""The engine's fast item encoding equals the protocol's reference encoding; commands round-trip exactly and
malformed command bytes are refused with a typed error."""

import pytest
from engine_helpers import USDC, market_params, trader

from ddx_offchain.engine import CommandDecodeError, decode_command, encode_command
from ddx_offchain.engine.codec import ZERO12, address_word, int_word, key_of, uint_word, value_of
from ddx_offchain.engine.commands import (
    AdvanceEpoch,
    AdvanceTime,
    CancelAll,
    CancelOrder,
    ChainBlock,
    CreateStrategy,
    Deposit,
    IndexPrice,
    IndexPrices,
    ListMarket,
    ListToken,
    ModifyOrder,
    PlaceOrder,
    UpdateMarket,
    WithdrawIntent,
    name32,
)
from ddx_offchain.protocol.items import (
    Kind,
    balance_key,
    balance_value,
    item_key,
    item_value,
    withdrawal_key,
    withdrawal_value,
)

T = trader(7)
S = name32("main")
M = name32("ETHP")
OID = bytes(range(32))


def test_withdrawal_and_balance_leaves_match_the_protocol_functions():
    from ddx_offchain.engine.state import K_BALANCE, K_WITHDRAWAL, PairLeaf

    for kind, key_fn, value_fn in ((K_WITHDRAWAL, withdrawal_key, withdrawal_value),
                                   (K_BALANCE, balance_key, balance_value)):
        leaf = PairLeaf(kind, T, USDC)
        leaf.amount = 123_456_789
        leaf.deposited = 987_654_321 if kind == K_BALANCE else 0
        key, value = leaf.item()
        assert key == key_fn("0x" + T.hex(), "0x" + USDC.hex())
        extra = (987_654_321,) if kind == K_BALANCE else ()
        assert value == value_fn("0x" + T.hex(), "0x" + USDC.hex(), 123_456_789, *extra)


def test_a_balance_leaf_exists_while_either_field_is_non_zero():
    from ddx_offchain.engine.state import K_BALANCE, PairLeaf

    leaf = PairLeaf(K_BALANCE, T, USDC)
    assert leaf.item()[1] is None  # (0, 0): no leaf, the escape hatch proves the pair absent
    leaf.deposited = 5
    assert leaf.item()[1] == balance_value("0x" + T.hex(), "0x" + USDC.hex(), 0, 5)  # lost everything: still a leaf


@pytest.mark.parametrize("kind,id_types,ids,field_types,fields", [
    (Kind.ORDER, ["bytes32"], [OID],
     ["bytes32", "address", "bytes32", "bytes32", "uint8", "uint8", "uint256", "uint256", "uint256", "uint64"],
     [OID, T, S, M, 1, 0, 2_000_000_000, 5_000, 10_000, 42]),
    (Kind.POSITION, ["address", "bytes32", "bytes32"], [T, S, M],
     ["address", "bytes32", "bytes32", "int256", "int256", "int256"], [T, S, M, -5_000, -10_000_000, -3]),
    (Kind.STRATEGY, ["address", "bytes32", "address"], [T, S, USDC],
     ["address", "bytes32", "address", "int256"], [T, S, USDC, -(2**200)]),
    (Kind.SYSTEM, ["uint8"], [0], ["uint8", "uint64"], [0, 2**64 - 1]),
])
def test_fast_words_equal_eth_abi(kind, id_types, ids, field_types, fields):
    def word(abi, v):
        if abi == "address":
            return address_word(v)
        if abi == "bytes32":
            return v
        if abi.startswith("int"):
            return int_word(v)
        return uint_word(v)

    assert key_of(int(kind), b"".join(word(a, v) for a, v in zip(id_types, ids))) == item_key(kind, id_types, ids)
    assert value_of(int(kind), b"".join(word(a, v) for a, v in zip(field_types, fields))) == \
        item_value(kind, field_types, fields)


def test_engine_objects_encode_like_eth_abi():
    from ddx_offchain.engine.state import Account, Market, Order, Position

    m = Market(market_params())
    a = Account(T, S, USDC)
    a.collateral = -77
    pos = Position(a, m)
    pos.size, pos.cost, pos.realized = -3_000, -6_000_000, 11
    order = Order(OID, a, m, 1, 2, 2_000_000_000, 4_000, 9_000, 5, True, b"\x0c" * 32, 1_700_000_000_000)
    assert a.item() == (item_key(Kind.STRATEGY, ["address", "bytes32", "address"], [T, S, USDC]),
                        item_value(Kind.STRATEGY, ["address", "bytes32", "address", "int256"], [T, S, USDC, -77]))
    assert pos.item()[1] == item_value(Kind.POSITION, ["address", "bytes32", "bytes32", "int256", "int256", "int256"],
                                       [T, S, m.id, -3_000, -6_000_000, 11])
    assert order.item()[1] == item_value(
        Kind.ORDER,
        ["bytes32", "address", "bytes32", "bytes32", "uint8", "uint8", "uint256", "uint256", "uint256", "uint64",
         "bool", "bytes32", "uint64"],
        [OID, T, S, m.id, 1, 2, 2_000_000_000, 4_000, 9_000, 5, True, b"\x0c" * 32, 1_700_000_000_000])
    assert m.item()[0] == item_key(Kind.MARKET, ["bytes32"], [m.id])
    assert ZERO12 + T == address_word(T)


COMMANDS = [
    PlaceOrder(OID, T, S, M, 1, 3, 0, 5_000, True),
    CancelOrder(OID, T, S, M, OID),
    CancelAll(OID, T, S),
    ModifyOrder(OID, T, S, M, OID, 10, 20),
    WithdrawIntent(OID, T, S, USDC, 2**128 - 1),
    CreateStrategy(OID, T, S),
    ChainBlock(OID, 9, OID, (Deposit(1, T, S, USDC, 5), Deposit(2, T, S, USDC, 6))),
    ChainBlock(OID, 10, OID, ()),
    IndexPrices(OID, (IndexPrice(M, 7), IndexPrice(name32("BTCP"), 8))),
    AdvanceTime(OID, 2**64 - 1),
    AdvanceEpoch(OID, 3),
    ListMarket(OID, market_params()),
    UpdateMarket(OID, market_params(active=False)),
    ListToken(OID, USDC),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_commands_round_trip(command):
    data = encode_command(command)
    assert data[0] == command.TAG
    assert (len(data) - 1) % 32 == 0
    assert decode_command(data) == command
    assert encode_command(decode_command(data)) == data


def test_placeorder_bytes_are_tag_then_words():
    data = encode_command(COMMANDS[0])
    assert data[:33] == b"\x01" + OID
    assert data[33:65] == ZERO12 + T
    assert data[-96:-64] == (1).to_bytes(32, "big")  # reduce_only
    assert data[-64:] == bytes(64)  # no client order id, no expiry


@pytest.mark.parametrize("mutate,message", [
    (lambda d: b"", "empty"),
    (lambda d: b"\x63" + d[1:], "unknown command tag"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d + b"\x00" * 32, "trailing"),
    (lambda d: d[:33] + b"\x01" + d[34:], "non-zero padding"),  # trader address word
    (lambda d: d[:-32 * 3] + (2).to_bytes(32, "big") + d[-32 * 2:], "bool"),  # reduce_only
    (lambda d: d[:-32 * 7] + (256).to_bytes(32, "big") + d[-32 * 6:], "does not fit uint8"),  # side
])
def test_malformed_command_bytes_are_refused(mutate, message):
    with pytest.raises(CommandDecodeError, match=message):
        decode_command(mutate(encode_command(COMMANDS[0])))


def test_oversized_list_is_refused_before_decoding_it():
    data = encode_command(ChainBlock(OID, 1, OID, ()))
    with pytest.raises(CommandDecodeError, match="at most"):
        decode_command(data[:-32] + (10**6).to_bytes(32, "big"))


def test_encoding_refuses_values_that_do_not_fit():
    with pytest.raises(CommandDecodeError):
        encode_command(PlaceOrder(OID, T, S, M, 1, 3, -1, 5, False))
    with pytest.raises(CommandDecodeError):
        encode_command(CancelOrder(OID, T[:19], S, M, OID))
