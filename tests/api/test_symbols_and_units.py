"""Markets addressed by symbol in the API and the SDK (protocol/names.py), and the SDK's human units
(client/units.py): exact conversion, refusals, rounding toward the safe side, round trips."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakes import InMemorySequencer
from test_engine_adapter import DOMAIN, ETHP, GENESIS, T0, USDC, USDC_BYTES, fund, make

from ddx_offchain.api.server import build_app
from ddx_offchain.client import DdxClient, MarketSpec, Trader, UnitError
from ddx_offchain.deployment.genesis import parse_genesis
from ddx_offchain.engine import Engine
from ddx_offchain.node.engine_adapter import EngineAdapter
from ddx_offchain.node.operator import OperatorNode
from ddx_offchain.protocol.eip712 import address_of
from ddx_offchain.protocol.errors import ProtocolError
from ddx_offchain.protocol.names import id32_of, readable_name

OPERATOR = address_of(b"\x0e" * 32)
ETHP_HEX = "0x" + ETHP.hex()
SPEC = MarketSpec(ETHP, USDC_BYTES, tick=10_000, lot=1_000, size_decimals=6, token_decimals=6)
BUY, SELL = 0, 1


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def served():
    """A node with the real engine (ETHP listed, Alice funded) behind a real aiohttp server."""

    async def start(**app_options):
        node, seq, adapter = make()
        fund(seq, [ALICE])
        server = TestClient(TestServer(build_app(node, **app_options)))
        await server.start_server()
        return node, seq, server

    return start


ALICE = Trader(b"\xa1" * 32, DOMAIN, lambda: T0)


# ---------------------------------------------------------------------------------------------- names


def test_a_reference_is_a_32_byte_id_its_hex_or_its_name():
    assert id32_of("ETHP") == id32_of(ETHP_HEX) == id32_of(ETHP_HEX.upper().replace("0X", "0x")) == id32_of(ETHP) == ETHP
    assert id32_of("ETH-PERP") == b"ETH-PERP".ljust(32, b"\0")
    for bad in ("", "x" * 33, "0x1234", "0x" + "zz" * 32, "a\0b", b"\x01" * 31, 5):
        with pytest.raises(ProtocolError):
            id32_of(bad)


def test_only_readable_names_have_a_symbol():
    assert readable_name(ETHP) == "ETHP" and readable_name(b"ETH-PERP".ljust(32, b"\0")) == "ETH-PERP"
    assert readable_name(b"\xff" * 32) is None  # not UTF-8
    assert readable_name(b"\0" * 32) is None
    assert readable_name(b"A\0B".ljust(32, b"\0")) is None  # a NUL inside
    assert readable_name(b"\x01ABC".ljust(32, b"\0")) is None  # not printable
    assert readable_name(b"0xAB".ljust(32, b"\0")) is None  # would read as hex


# ---------------------------------------------------------------------------------------------- units


def test_decimal_prices_and_sizes_become_exact_engine_integers():
    assert SPEC.price_units("2000.01") == 2_000_010_000
    assert SPEC.price_units(Decimal("2000")) == SPEC.price_units("2000.000000000") == 2_000_000_000
    assert SPEC.price_units("0.01") == 10_000  # one tick
    assert SPEC.size_units("0.5") == 500_000 and SPEC.size_units("0.001") == 1_000  # one lot
    assert SPEC.size_units(" 3 ") == 3_000_000


def test_values_off_the_grid_are_refused_unless_rounding_is_asked():
    with pytest.raises(UnitError, match="tick"):
        SPEC.price_units("2000.005")
    with pytest.raises(UnitError, match="side"):
        SPEC.price_units("2000.005", round=True)
    with pytest.raises(UnitError, match="lot"):
        SPEC.size_units("0.0015")


def test_rounding_goes_toward_the_safe_side():
    assert SPEC.price_units("2000.005", side=BUY, round=True) == 2_000_000_000  # a buyer never pays more
    assert SPEC.price_units("2000.005", side=SELL, round=True) == 2_000_010_000  # a seller never gets less
    assert SPEC.price_units("2000.000001", side=SELL, round=True) == 2_000_010_000
    assert SPEC.price_units("2000.009999", side=BUY, round=True) == 2_000_000_000
    assert SPEC.price_units("2000.01", side=BUY, round=True) == 2_000_010_000  # on the grid: unchanged
    assert SPEC.size_units("1.2349", round=True) == 1_234_000  # sizes down
    assert SPEC.price_units("0.005", side=SELL, round=True) == 10_000
    with pytest.raises(UnitError, match="zero"):
        SPEC.price_units("0.005", side=BUY, round=True)
    with pytest.raises(UnitError, match="zero"):
        SPEC.size_units("0.0009", round=True)


@pytest.mark.parametrize("value", [2000.01, 2000, True, None, b"1", "abc", "NaN", "Infinity", "-1", "0", "1e", Decimal("-0.01")])
def test_floats_ints_and_non_numbers_are_refused(value):
    with pytest.raises(UnitError):
        SPEC.price_units(value, side=BUY, round=True)
    with pytest.raises(UnitError):
        SPEC.size_units(value, round=True)


def test_a_float_refusal_says_why():
    with pytest.raises(UnitError, match="float"):
        SPEC.price_units(0.1)


def test_engine_integers_round_trip_through_decimals_exactly():
    for units in (10_000, 2_000_010_000, 123_450_000, 10_000 * (2**100 + 1)):
        assert SPEC.price_units(SPEC.price(units)) == units
        assert SPEC.price_units(str(SPEC.price(str(units)))) == units  # from the API's decimal string too
    for units in (1_000, 500_000, 1_234_000, 1_000 * (2**110 + 7)):
        assert SPEC.size_units(SPEC.size(units)) == units
    for text in ("2000.01", "0.01", "99999999999999999999999999999999.99"):
        assert SPEC.price(SPEC.price_units(text)) == Decimal(text)
    assert SPEC.amount("-1500000") == Decimal("-1.5")
    with pytest.raises(UnitError):
        SPEC.price("12.5")


def test_a_spec_needs_the_collateral_decimals():
    doc = {"market": ETHP_HEX, "token": USDC, "tick": "10000", "lot": "1000", "sizeDecimals": "6", "tokenDecimals": None}
    with pytest.raises(UnitError, match="token_decimals"):
        MarketSpec.from_doc(doc)
    assert MarketSpec.from_doc(doc, 6) == SPEC
    assert MarketSpec.from_doc(doc | {"tokenDecimals": "6"}) == SPEC
    assert SPEC.symbol == "ETHP"


# ---------------------------------------------------------------------------------------------- the API


def test_markets_and_books_are_addressable_by_symbol_or_hex(served):
    async def scenario():
        node, seq, server = await served(token_decimals={USDC_BYTES: 6})
        try:
            by_symbol = await (await server.get("/v1/markets/ETHP")).json()
            by_hex = await (await server.get(f"/v1/markets/{ETHP_HEX}")).json()
            assert by_symbol == by_hex and by_symbol["symbol"] == "ETHP" and by_symbol["market"] == ETHP_HEX
            assert by_symbol["tokenDecimals"] == "6"
            book = await (await server.get("/v1/books/ETHP")).json()
            assert book["symbol"] == "ETHP" and book["market"] == ETHP_HEX
            updates = await server.get("/v1/updates?channel=market&key=ETHP")
            assert updates.status == 200
            missing = await server.get("/v1/markets/BTCP")
            assert missing.status == 404 and (await missing.json()) == {"error": "unknown_market", "detail": "no market BTCP"}
            for bad in ("0x1234", "x" * 33):
                resp = await server.get(f"/v1/books/{bad}")
                assert resp.status == 400 and (await resp.json())["error"] == "bad_path"
        finally:
            await server.close()

    run(scenario())


def test_without_the_manifest_the_token_decimals_are_null(served):
    async def scenario():
        node, seq, server = await served()
        try:
            doc = await (await server.get("/v1/markets/ETHP")).json()
            assert doc["tokenDecimals"] is None and doc["symbol"] == "ETHP"
        finally:
            await server.close()

    run(scenario())


def test_a_market_named_with_a_dash_is_found_by_that_name():
    async def scenario():
        genesis = copy.deepcopy(GENESIS)
        genesis["markets"][0]["market"] = "ETH-PERP"
        adapter = EngineAdapter(Engine(parse_genesis(genesis)))
        node = OperatorNode(node_id=1, domain=DOMAIN, operator_key=b"\x0e" * 32, engine=adapter, view=adapter,
                            history_path=None, now_ms=lambda: T0)
        node.attach(InMemorySequencer(node.service))
        server = TestClient(TestServer(build_app(node)))
        await server.start_server()
        try:
            doc = await (await server.get("/v1/markets/ETH-PERP")).json()
            assert doc["symbol"] == "ETH-PERP" and doc["market"] == "0x" + b"ETH-PERP".ljust(32, b"\0").hex()
        finally:
            await server.close()

    run(scenario())


# ---------------------------------------------------------------------------------------------- the SDK


def test_the_sdk_places_orders_in_human_units_and_reads_them_back(served):
    async def scenario():
        node, seq, server = await served()
        try:
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}, token_decimals={USDC_BYTES: 6}) as client:
                receipt = await client.place_order(ALICE, "ETHP", BUY, "0.5", "1999.995", round=True)
                assert receipt.request_index > 0
                state = await client.trader_state(ALICE.address)
                [order] = state["openOrders"]
                assert order["symbol"] == "ETHP" and order["price"] == "1999990000" and order["remaining"] == "500000"
                spec = await client.market_spec(ETHP_HEX)  # the same market by hex: one spec, fetched once
                assert spec == await client.market_spec("ETHP") == SPEC
                assert spec.price(order["price"]) == Decimal("1999.99") and spec.size(order["remaining"]) == Decimal("0.5")
                book = await client.book("ETHP")
                assert spec.levels(book["bids"]) == [(Decimal("1999.99"), Decimal("0.5"))]
                proposed = len(seq.log)
                with pytest.raises(UnitError, match="float"):
                    await client.place_order(ALICE, "ETHP", BUY, 0.5, "1999.99")
                with pytest.raises(UnitError, match="tick"):
                    await client.place_order(ALICE, "ETHP", SELL, "0.5", "2000.005")
                assert len(seq.log) == proposed  # nothing refused was signed or sent
                receipt = await client.place_order(ALICE, "ETHP", SELL, "0.25", "2000.005", round=True)
                state = await client.trader_state(ALICE.address)
                assert sorted(o["price"] for o in state["openOrders"]) == ["1999990000", "2000010000"]
        finally:
            await server.close()

    run(scenario())


def test_the_sdk_takes_the_decimals_the_node_serves(served):
    async def scenario():
        node, seq, server = await served(token_decimals={USDC_BYTES: 6})
        try:
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}) as client:
                assert (await client.market_spec("ETHP")).token_decimals == 6
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}, token_decimals={USDC_BYTES: 18}) as client:
                assert (await client.market_spec("ETHP")).token_decimals == 6  # the node's word wins
        finally:
            await server.close()

    run(scenario())


def test_the_sdk_refuses_human_units_it_cannot_convert(served):
    async def scenario():
        node, seq, server = await served()
        try:
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}) as client:
                with pytest.raises(UnitError, match="token_decimals"):
                    await client.place_order(ALICE, "ETHP", BUY, "1", "2000")
        finally:
            await server.close()

    run(scenario())


def test_the_client_from_a_manifest_knows_the_collateral_decimals(tmp_path):
    from ddx_offchain.deployment.manifest import CollateralEntry, Manifest
    from ddx_offchain.protocol.eip712 import checksum_address

    manifest = Manifest(
        network="local", chain_id=31337, exchange=checksum_address(DOMAIN.verifying_contract), deployment_block=1,
        deployer=checksum_address(b"\x01" * 20), operators=(checksum_address(OPERATOR),), threshold=1,
        operator_set_id=1, supermajority_required=True, escape_delay=86400, forced_deadline=3600,
        governance_delay=86400, collateral=(CollateralEntry(USDC, "USDC", 6, 10**15, 86400),),
    )
    (tmp_path / "m.json").write_text(manifest.to_json())
    client = DdxClient.from_manifest("http://127.0.0.1:1", str(tmp_path / "m.json"))
    assert client.token_decimals == {USDC_BYTES: 6}
