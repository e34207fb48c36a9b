"""docs/protocol.md §7: request typed data, wire form, log entries and receipts, checked against eth-account."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from ddx_offchain.protocol.eip712 import SECP256K1_N, Domain, checksum_address
from ddx_offchain.protocol.errors import ProtocolError
from ddx_offchain.protocol.requests import (
    REQUEST_TYPES,
    Action,
    ApproveAgent,
    Batch,
    CancelAll,
    CancelOrder,
    CreateStrategy,
    ModifyOrder,
    OrderType,
    PlaceOrder,
    PlaceTrigger,
    PlaceTwap,
    Receipt,
    RequestRejected,
    RevokeAgent,
    ScheduleCancel,
    SignedReceipt,
    Transfer,
    WithdrawIntent,
    decode_entry,
    encode_entry,
    market_id,
    request_from_json,
    sign_request,
    strategy_id,
    verify_receipt,
    verify_request,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
TRADER = bytes.fromhex(Account.from_key(KEY).address[2:])
DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
TS = 1_700_000_000_000


def samples():
    s, m, h = strategy_id("main"), market_id("ETHP"), b"\x42" * 32
    return [
        PlaceOrder(TRADER, s, m, 0, OrderType.LIMIT, 2_000_000_000, 10, False, 1, TS),
        PlaceOrder(TRADER, s, m, 1, OrderType.MARKET, 0, 3, True, 2, TS),
        CancelOrder(TRADER, s, m, h, 3, TS),
        CancelAll(TRADER, s, b"\x00" * 32, 4, TS),
        ModifyOrder(TRADER, s, m, h, 1_999_000_000, 7, 5, TS),
        WithdrawIntent(TRADER, s, b"\x33" * 20, 1_000_000, 6, TS),
        CreateStrategy(TRADER, strategy_id("hedge"), 7, TS),
        Batch(TRADER, s, (
            Action(0, m, 0, OrderType.LIMIT, 2_000_000_000, 10, False, b"\x00" * 32),
            Action(1, m, 0, 0, 0, 0, False, h),
            Action(2, m, 0, 0, 1_999_000_000, 7, False, h),
        ), 8, TS),
        ApproveAgent(TRADER, s, b"\x44" * 20, 1, TS + 86_400_000, 9, TS),
        RevokeAgent(TRADER, b"\x00" * 32, b"\x44" * 20, 10, TS),
        ScheduleCancel(TRADER, s, b"\x00" * 32, TS + 60_000, 11, TS),
        Transfer(TRADER, s, strategy_id("hedge"), b"\x33" * 20, 5_000_000, 12, TS),
        PlaceTrigger(TRADER, s, m, 1, 1, 1_900_000_000, OrderType.MARKET, 0, 0, True, True, b"\x07" * 32, b"\x08" * 32,
                     13, TS),
        PlaceTwap(TRADER, s, m, 0, 5_000_000, 600_000, 60_000, 2_000_000_000, False, 14, TS),
    ]


@pytest.mark.parametrize("request_", samples(), ids=lambda r: r.PRIMARY_TYPE)
def test_digest_and_signature_match_eth_account(request_):
    signable = encode_typed_data(full_message=request_.typed_data(DOMAIN))
    ours = sign_request(request_, DOMAIN, KEY)
    theirs = Account.sign_message(signable, KEY)
    assert ours.request_hash == theirs.message_hash
    assert ours.signature == theirs.signature  # RFC 6979 on both sides: byte-identical
    assert verify_request(request_, theirs.signature, DOMAIN).request_hash == ours.request_hash


def test_type_strings_are_the_documented_ones():
    doc = open("docs/protocol.md").read()
    for cls in REQUEST_TYPES.values():
        assert f"`{cls.TYPE_STRING}`" in doc
    assert "Receipt(bytes32 requestHash,uint64 requestIndex,uint64 epoch,address sender,uint64 nonce)" in doc


@pytest.mark.parametrize("request_", samples(), ids=lambda r: r.PRIMARY_TYPE)
def test_entry_and_json_round_trip(request_):
    signed = sign_request(request_, DOMAIN, KEY)
    entry = encode_entry(signed)
    actions = len(getattr(request_, "actions", ()))
    assert len(entry) == 2 + 32 * len(request_.FIELDS) + 32 * len(Action.FIELDS) * actions + 65
    assert decode_entry(entry) == (request_, signed.signature)
    parsed, signature, domain = request_from_json(signed.to_json())
    assert (parsed, signature, domain) == (request_, signed.signature, None)


def test_entry_decoding_refuses_malformed_entries():
    entry = encode_entry(sign_request(samples()[0], DOMAIN, KEY))
    for bad in (entry[:-1], entry + b"\x00", b"\x02" + entry[1:], entry[:1] + b"\x09" + entry[2:], b""):
        with pytest.raises(ProtocolError):
            decode_entry(bad)
    dirty_address = entry[:2] + b"\x01" + entry[3:]  # non-zero padding in the trader word
    with pytest.raises(ProtocolError):
        decode_entry(dirty_address)
    bool_word_at = 2 + 32 * 7
    bad_bool = entry[: bool_word_at + 31] + b"\x02" + entry[bool_word_at + 32:]
    with pytest.raises(ProtocolError):
        decode_entry(bad_bool)


def test_high_s_twin_is_refused_as_malleable():
    request_ = samples()[0]
    signed = sign_request(request_, DOMAIN, KEY)
    r, s, v = signed.signature[:32], int.from_bytes(signed.signature[32:64], "big"), signed.signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # the same point, other s: also "valid" ECDSA
    with pytest.raises(RequestRejected) as info:
        verify_request(request_, twin, DOMAIN)
    assert info.value.reason == "malleable_signature"


def test_other_domain_or_other_signer_is_refused():
    request_ = samples()[0]
    other_chain = sign_request(request_, Domain.of(1, "0x" + "5a" * 20), KEY).signature
    other_contract = sign_request(request_, Domain.of(31337, "0x" + "5b" * 20), KEY).signature
    other_key = sign_request(request_, DOMAIN, b"\x01" * 32).signature
    for signature in (other_chain, other_contract, other_key):
        with pytest.raises(RequestRejected) as info:
            verify_request(request_, signature, DOMAIN)
        assert info.value.reason == "signer_mismatch"


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda m: m.update(side="2"), "bad_field"),
        (lambda m: m.update(orderType="5"), "bad_field"),
        (lambda m: m.update(size="0"), "bad_field"),
        (lambda m: m.update(price="0"), "bad_field"),
        (lambda m: m.update(price=str(2**128)), "bad_field"),
        (lambda m: m.update(nonce=str(2**64)), "bad_field"),
        (lambda m: m.update(nonce=5), "bad_field"),
        (lambda m: m.update(nonce="05"), "bad_field"),
        (lambda m: m.update(reduceOnly="false"), "bad_field"),
        (lambda m: m.update(market="0x" + "00" * 32), "bad_field"),
        (lambda m: m.update(trader="0x" + "00" * 20), "bad_field"),
        (lambda m: m.update(extra="1"), "bad_schema"),
        (lambda m: m.pop("size"), "bad_schema"),
    ],
)
def test_stateless_rules(mutate, reason):
    doc = sign_request(samples()[0], DOMAIN, KEY).to_json()
    mutate(doc["message"])
    with pytest.raises(RequestRejected) as info:
        request_, signature, _ = request_from_json(doc)
        verify_request(request_, signature, DOMAIN)
    assert info.value.reason == reason


def test_bad_checksum_address_is_refused():
    doc = sign_request(samples()[0], DOMAIN, KEY).to_json()
    good = checksum_address(TRADER)
    flipped = good[:2] + "".join(c.swapcase() if c.isalpha() else c for c in good[2:])
    assert flipped != good and flipped.lower() != flipped
    doc["message"]["trader"] = flipped
    with pytest.raises(RequestRejected):
        request_from_json(doc)
    doc["message"]["trader"] = good.lower()  # all lower case is accepted
    assert request_from_json(doc)[0].trader == TRADER


def test_receipt_signed_and_verified_against_the_operator_set():
    operator_key = b"\x07" * 32
    operator = bytes.fromhex(Account.from_key(operator_key).address[2:])
    signed_request = sign_request(samples()[0], DOMAIN, KEY)
    receipt = Receipt(signed_request.request_hash, 17, 2, TRADER, 1)
    signed = receipt.sign(DOMAIN, operator_key)
    theirs = Account.sign_message(encode_typed_data(full_message=receipt.typed_data(DOMAIN)), operator_key)
    assert signed.signature == theirs.signature
    round_tripped = SignedReceipt.from_json(signed.to_json(DOMAIN))
    assert verify_receipt(round_tripped, DOMAIN, {operator}) == operator
    with pytest.raises(ProtocolError):
        verify_receipt(round_tripped, DOMAIN, {TRADER})
    forged = SignedReceipt(Receipt(signed_request.request_hash, 18, 2, TRADER, 1), signed.signature)
    with pytest.raises(ProtocolError):
        verify_receipt(forged, DOMAIN, {operator})


@settings(max_examples=60, deadline=None)
@given(
    side=st.integers(0, 1),
    price=st.integers(1, 2**128 - 1),
    size=st.integers(1, 2**128 - 1),
    nonce=st.integers(0, 2**64 - 1),
    ts=st.integers(0, 2**64 - 1),
    reduce_only=st.booleans(),
    chain_id=st.integers(1, 2**256 - 1),
)
def test_struct_hash_matches_eth_account_for_any_values(side, price, size, nonce, ts, reduce_only, chain_id):
    domain = Domain(chain_id, b"\x5a" * 20)
    request_ = PlaceOrder(TRADER, b"\x01" * 32, market_id("BTCP"), side, 0, price, size, reduce_only, nonce, ts)
    signable = encode_typed_data(full_message=request_.typed_data(domain))
    assert signable.body == request_.struct_hash()
    assert signable.header == domain.separator


def test_the_worked_example_in_the_spec():
    doc = open("docs/protocol.md").read()
    request_ = PlaceOrder(TRADER, strategy_id("main"), market_id("ETHP"), 0, 0, 2_000_000_000, 10, False, 1, TS)
    signed = sign_request(request_, DOMAIN, KEY)
    for value in (
        request_.TYPEHASH, DOMAIN.separator, request_.struct_hash(), signed.request_hash, signed.signature,
        Receipt(signed.request_hash, 1, 0, TRADER, 1).digest(DOMAIN),
    ):
        assert f"`0x{value.hex()}`" in doc
    assert checksum_address(TRADER) in doc and len(encode_entry(signed)) == 451


def test_batch_actions_have_one_canonical_form_and_a_bounded_count():
    s, m, h = strategy_id("main"), market_id("ETHP"), b"\x42" * 32
    bad = [
        Action(0, m, 0, 0, 5, 1, False, h),  # a place names no order
        Action(1, m, 1, 0, 0, 0, False, h),  # a cancel carries no side
        Action(2, m, 0, 0, 5, 1, True, h),  # a modify keeps the order's flags
        Action(3, m, 0, 0, 5, 1, False, h),  # no such kind
        Action(0, m, 0, OrderType.LIMIT, 0, 1, False, b"\x00" * 32),  # the PlaceOrder rules apply: price
    ]
    for action in bad:
        with pytest.raises(RequestRejected):
            Batch(TRADER, s, (action,), 1, TS).validate()
    ok = Action(1, m, 0, 0, 0, 0, False, h)
    Batch(TRADER, s, (ok,) * 50, 1, TS).validate()
    for count in (0, 51):
        with pytest.raises(RequestRejected):
            Batch(TRADER, s, (ok,) * count, 1, TS).validate()
    signed = sign_request(Batch(TRADER, s, (ok,) * 2, 1, TS), DOMAIN, KEY)
    entry = encode_entry(signed)
    too_many = entry[:2 + 64] + (51).to_bytes(32, "big") + entry[2 + 96:]
    for broken in (entry[:-33], entry[:2 + 64] + (3).to_bytes(32, "big") + entry[2 + 96:], too_many):
        with pytest.raises(ProtocolError):
            decode_entry(broken)
    doc = signed.to_json()
    doc["message"]["actions"][0]["extra"] = "1"
    with pytest.raises(RequestRejected):
        request_from_json(doc)


def test_only_the_trader_signs_what_an_agent_may_not_and_agents_need_the_flag():
    other = bytes.fromhex("22" * 32)
    s, m = strategy_id("main"), market_id("ETHP")
    order = PlaceOrder(TRADER, s, m, 0, OrderType.LIMIT, 5, 1, False, 1, TS)
    by_agent = sign_request(order, DOMAIN, other)
    assert by_agent.signer == bytes.fromhex(Account.from_key(other).address[2:]) and by_agent.by_agent
    with pytest.raises(RequestRejected):
        verify_request(order, by_agent.signature, DOMAIN)  # by default the trader's own key only
    verified = verify_request(order, by_agent.signature, DOMAIN, agents=True)
    assert verified.by_agent and verified.signer == bytes.fromhex(Account.from_key(other).address[2:])
    withdraw = WithdrawIntent(TRADER, s, b"\x33" * 20, 1, 2, TS)
    with pytest.raises(RequestRejected):
        verify_request(withdraw, sign_request(withdraw, DOMAIN, other).signature, DOMAIN, agents=True)


def test_the_batch_worked_example_and_every_typehash_in_the_spec():
    """§7.6's Batch vectors (the array encoding a third party most easily gets wrong) and the typeHash table, from the
    code and from eth-account's independent encoder."""
    doc = open("docs/protocol.md").read()
    m, s = market_id("ETHP"), strategy_id("main")
    batch = Batch(TRADER, s, (
        Action(0, m, 0, 2, 1_999_000_000, 10, False, b"\x00" * 32, strategy_id("bid-1"), 0),
        Action(1, m, 0, 0, 0, 0, False, b"\x42" * 32, b"\x00" * 32, 0),
    ), 2, TS, True)
    signed = sign_request(batch, DOMAIN, KEY)
    theirs = Account.sign_message(encode_typed_data(full_message=batch.typed_data(DOMAIN)), KEY)
    assert theirs.message_hash == signed.request_hash and theirs.signature == signed.signature
    from ddx_offchain.protocol.requests import batch_action_id

    for value in (Action.TYPEHASH, Batch.TYPEHASH, batch.actions[0].struct_hash(), batch.actions[1].struct_hash(),
                  batch.struct_hash(), signed.request_hash, signed.signature, batch_action_id(signed.request_hash, 0)):
        assert f"`0x{value.hex()}`" in doc
    assert f"| log entry | {len(encode_entry(signed))} bytes: `0x01 0x07`" in doc
    for name, cls in REQUEST_TYPES.items():
        assert f"| {cls.TYPE_ID} `{name}` | `0x{cls.TYPEHASH.hex()}` |" in doc
