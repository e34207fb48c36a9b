"""Property-based fuzz of the HTTP API: whatever arrives, the answer is a 4xx with a reason, never a 5xx,
and nothing is sequenced. DDX_FUZZ_EXAMPLES raises the example count (default 150 per property)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse

import pytest
from apihelpers import EngineOperator, LiveNode, make_node, now_ms, signed_order
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ddx_offchain.node.admission import MAX_BODY_BYTES
from ddx_offchain.protocol.eip712 import SECP256K1_N

EXAMPLES = int(os.environ.get("DDX_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
KEY = b"\xf1" * 32


@pytest.fixture(scope="module")
def live():
    node = LiveNode()
    yield node
    node.stop()


def assert_refused(live: LiveNode, status: int, body: bytes, sequenced_before: int) -> dict:
    assert 400 <= status < 500, (status, body[:300])
    doc = json.loads(body)
    assert isinstance(doc["error"], str) and doc["error"] and isinstance(doc["detail"], str)
    assert len(live.sequencer.log) == sequenced_before
    return doc


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(body=st.binary(max_size=600) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bodies_are_refused_with_a_reason(live, body):
    before = len(live.sequencer.log)
    status, out = live.request("POST", "/v1/requests", body)
    assert_refused(live, status, out, before)


def _high_s(signature: str) -> str:
    sig = bytes.fromhex(signature[2:])
    s = int.from_bytes(sig[32:64], "big")
    return "0x" + (sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])).hex()


mutations = st.one_of(
    st.tuples(st.just("set_field"), st.sampled_from(["trader", "strategy", "market", "side", "orderType", "price", "size", "reduceOnly", "nonce", "timestamp"]), json_values),
    st.tuples(st.just("drop_field"), st.sampled_from(["trader", "price", "nonce", "timestamp"]), st.none()),
    st.tuples(st.just("add_field"), st.text(min_size=1, max_size=10), json_values),
    st.tuples(st.just("signature"), st.none(), st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex()) | json_values),
    st.tuples(st.just("high_s"), st.none(), st.none()),
    st.tuples(st.just("domain"), st.none(), st.fixed_dictionaries({"chainId": st.integers(1, 10**6).map(str), "verifyingContract": st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())})),
    st.tuples(st.just("timestamp_off"), st.none(), st.sampled_from([-10**7, -61_000, 6_000, 10**9])),
    st.tuples(st.just("type"), st.none(), json_values),
    st.tuples(st.just("oversize"), st.none(), st.integers(MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES)),
)


@FUZZ
@given(mutation=mutations, nonce=st.integers(0, 2**64 - 1))
def test_mutated_requests_are_refused_with_a_reason(live, mutation, nonce):
    kind, name, value = mutation
    doc = signed_order(KEY, nonce).to_json()
    original = json.dumps(doc, sort_keys=True)
    if kind == "set_field":
        doc["message"][name] = value
    elif kind == "drop_field":
        del doc["message"][name]
    elif kind == "add_field":
        assume(name not in doc["message"])
        doc["message"][name] = value
    elif kind == "signature":
        doc["signature"] = value
    elif kind == "high_s":
        doc["signature"] = _high_s(doc["signature"])
    elif kind == "domain":
        assume(value["chainId"] != "31337")
        doc["domain"] = value
    elif kind == "timestamp_off":
        doc["message"]["timestamp"] = str(max(0, now_ms() + value))
    elif kind == "type":
        doc["type"] = value
    body = json.dumps(doc).encode()
    if kind == "oversize":
        body = body[:-1] + b', "pad": "' + b"x" * value + b'"}'
    assume(kind == "oversize" or json.dumps(doc, sort_keys=True) != original)
    before = len(live.sequencer.log)
    status, out = live.request("POST", "/v1/requests", body)
    refusal = assert_refused(live, status, out, before)
    if kind == "high_s":
        assert refusal["error"] == "malleable_signature"
    if kind == "domain":
        assert refusal["error"] == "wrong_domain"
    if kind == "oversize":
        assert refusal["error"] == "body_too_large"


@settings(max_examples=max(20, EXAMPLES // 5), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nonce=st.integers(0, 2**64 - 1), price=st.integers(1, 10**12))
def test_replayed_nonce_is_answered_without_sequencing_again(live, nonce, price):
    first = signed_order(KEY, nonce, price=price)
    before = len(live.sequencer.log)
    status, receipt = live.request("POST", "/v1/requests", json.dumps(first.to_json()).encode())
    if status == 409:  # hypothesis may reuse a nonce an earlier example sequenced: that is this very rule
        assert len(live.sequencer.log) == before
        return
    assert status == 200 and len(live.sequencer.log) == before + 1
    status, again = live.request("POST", "/v1/requests", json.dumps(first.to_json()).encode())
    assert status == 200 and json.loads(again) == json.loads(receipt)
    other = signed_order(KEY, nonce, price=price + 1)
    status, out = live.request("POST", "/v1/requests", json.dumps(other.to_json()).encode())
    assert assert_refused(live, status, out, before + 1)["error"] == "nonce_reused"


paths = st.sampled_from(
    ["/v1/receipts/{}", "/v1/requests?from={}", "/v1/requests?from=1&to={}", "/v1/updates?after={}", "/v1/updates?channel={}",
     "/v1/updates?channel=trader&key={}", "/v1/books/{}", "/v1/traders/{}", "/v1/traders/0x" + "11" * 20 + "/{}",
     "/v1/proofs/withdrawal/{}/0x" + "22" * 20, "/v1/ws?channel={}", "/v1/{}"]
)


@FUZZ
@given(template=paths, value=st.text(max_size=80))
def test_arbitrary_reads_never_fail_on_the_server(live, template, value):
    path = template.format(urllib.parse.quote(value, safe=""))
    status, out = live.request("GET", path)
    assert status < 500, (path, status, out[:200])
    if status >= 400:
        assert isinstance(json.loads(out)["error"], str)


@settings(max_examples=max(10, EXAMPLES // 10), deadline=None)
@given(frames=st.lists(st.text(max_size=300) | json_values.map(json.dumps) | json_values.map(lambda v: json.dumps({"id": "f", "request": v})), min_size=1, max_size=25))
def test_request_channel_answers_every_bad_frame_with_a_reason(frames):
    from apihelpers import running

    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            ws = await client.ws_connect("/v1/ws/requests")
            for frame in frames:
                await ws.send_str(frame)
                doc = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                assert isinstance(doc["error"], str) and doc["error"] != "internal", (frame, doc)
            await ws.close()
            assert seq.log == []

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def live_engine(tmp_path_factory):
    """A node with the real engine, a listed market, a book, trades and funding: the market-data routes have data."""
    from apihelpers import DOMAIN

    from ddx_offchain.client import Trader

    op = EngineOperator(tmp_path_factory.mktemp("fuzz") / "history.sqlite")
    maker, taker = Trader(b"\x61" * 32, DOMAIN), Trader(b"\x62" * 32, DOMAIN)
    op.price(2_000_000_000)
    op.advance(1_000)
    for t in (maker, taker):
        op.deposit(t.address, 10**12)
    for k in range(3):
        op.request(maker.place_order("ETHP", 1, 100_000, 2_001_000_000 + k * 10_000))
        op.request(maker.place_order("ETHP", 0, 100_000, 1_999_000_000 - k * 10_000))
        op.request(taker.place_order("ETHP", 0, 50_000, 2_001_000_000, order_type=1))
        op.advance(3_600_000)
    node = LiveNode((op.node, op.sequencer))
    node.trader = "0x" + taker.address.hex()
    yield node
    node.stop()


MARKET = "0x" + b"ETHP".ljust(32, b"\0").hex()
market_paths = st.sampled_from(
    ["/v1/markets/{}", "/v1/markets/{}/trades", "/v1/markets/{}/candles", "/v1/markets/{}/funding", "/v1/markets/{}/book",
     "/v1/tickers/{}", "/v1/markets/" + MARKET + "/trades?limit={}", "/v1/markets/" + MARKET + "/candles?interval={}",
     "/v1/markets/" + MARKET + "/candles?interval=1h&start={}", "/v1/markets/" + MARKET + "/candles?end={}&limit=3",
     "/v1/markets/" + MARKET + "/funding?start={}", "/v1/markets/" + MARKET + "/book?depth={}",
     "/v1/traders/{}/account", "/v1/traders/{}/fills", "/v1/traders/TRADER/fills?before={}",
     "/v1/traders/TRADER/orders?status={}", "/v1/traders/TRADER/orders?limit={}", "/v1/traders/TRADER/funding?before={}",
     "/v1/traders/TRADER/liquidations?limit={}", "/v1/traders/TRADER/{}", "/v1/ws?channel=book&key={}",
     "/v1/ws?channel=book&key=" + MARKET + "&from={}", "/v1/ws?channel=book&key=" + MARKET + "&depth={}",
     "/v1/orders/{}", "/v1/orders?trader={}&clientOrderId=" + MARKET, "/v1/orders?trader=TRADER&clientOrderId={}",
     "/v1/orders?trader=TRADER&strategy={}&clientOrderId=" + MARKET, "/v1/traders/TRADER/triggers?x={}"]
)
numbers = st.one_of(st.text(max_size=40), st.integers(-10, 10**30).map(str), st.sampled_from(["1m", "1d", "open", "0", ""]))


@FUZZ
@given(template=market_paths, value=numbers)
def test_market_data_reads_never_fail_on_the_server(live_engine, template, value):
    path = template.replace("TRADER", live_engine.trader).format(urllib.parse.quote(value, safe=""))
    status, out = live_engine.request("GET", path)
    assert status < 500, (path, status, out[:200])
    if status >= 400:
        doc = json.loads(out)
        assert isinstance(doc["error"], str) and isinstance(doc["detail"], str)


def test_market_data_routes_answer_with_data_on_the_fuzzed_node(live_engine):
    """The fuzzed node really has market data (so the fuzz reaches past the not-found answers)."""
    for path in ("/v1/markets/" + MARKET + "/trades", "/v1/markets/" + MARKET + "/candles?interval=1h",
                 "/v1/markets/" + MARKET + "/funding", f"/v1/traders/{live_engine.trader}/fills"):
        status, out = live_engine.request("GET", path)
        assert status == 200, (path, out[:200])
        doc = json.loads(out)
        assert any(isinstance(v, list) and v for v in doc.values()), (path, doc)
