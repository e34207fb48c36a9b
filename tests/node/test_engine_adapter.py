"""The node with the real engine: request -> engine command mapping, routed updates, views and proofs."""

from __future__ import annotations

import asyncio
import json

import pytest
from fakes import InMemorySequencer

from ddx_offchain.api import render
from ddx_offchain.client import Trader
from ddx_offchain.daemon.config import ConfigError
from ddx_offchain.deployment.genesis import example_genesis, parse_genesis
from ddx_offchain.engine import Engine
from ddx_offchain.engine.commands import AdvanceEpoch, ChainBlock, Deposit, IndexPrice, IndexPrices, encode_command
from ddx_offchain.engine.commands import PlaceOrder as EnginePlaceOrder
from ddx_offchain.engine.reasons import Reject
from ddx_offchain.engine.updates import Rejected
from ddx_offchain.node.engine_adapter import EngineAdapter
from ddx_offchain.node.operator import OperatorNode
from ddx_offchain.node.state_machine import REFUSED, SEQUENCED
from ddx_offchain.node.views import ProofUnavailable
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.proof import InclusionProof, verify_inclusion
from ddx_offchain.protocol.requests import market_id

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
USDC_BYTES = bytes.fromhex(USDC[2:])
T0 = 1_700_000_000_000
ETHP = market_id("ETHP")
GENESIS = example_genesis(USDC)


class FakeCheckpoints:
    """A chain side as the node sees it (node/operator.py CheckpointSource)."""

    recorded: int | None = None

    def status(self) -> dict:
        return {"state": "collecting", "lastRecordedEpoch": self.recorded}

    def last_recorded_epoch(self) -> int | None:
        return self.recorded


def operator_entry(command) -> bytes:
    return b"\x02" + encode_command(command)


def make(history_path=None):
    adapter = EngineAdapter(Engine(parse_genesis(GENESIS)))
    node = OperatorNode(node_id=1, domain=DOMAIN, operator_key=b"\x0e" * 32, engine=adapter, view=adapter,
                        history_path=history_path, now_ms=lambda: T0)
    seq = InMemorySequencer(node.service)
    node.attach(seq)
    return node, seq, adapter


def fund(seq, traders):
    deposits = tuple(Deposit(i + 1, t.address, b"main".ljust(32, b"\x00"), USDC_BYTES, 10_000 * 10**6) for i, t in enumerate(traders))
    seq.append(operator_entry(ChainBlock(b"\x01" * 32, 1, b"\x0b" * 32, deposits)))
    seq.append(operator_entry(IndexPrices(b"\x02" * 32, (IndexPrice(ETHP, 2_000 * 10**6),))))


def test_genesis_errors_name_the_field():
    bad = json.loads(json.dumps(GENESIS))
    bad["markets"][0]["tick"] = "ten"
    with pytest.raises(ConfigError, match=r"markets\[0\].tick"):
        parse_genesis(bad)
    with pytest.raises(ConfigError, match="tokens"):
        parse_genesis({"tokens": ["0x12"]})


def test_trades_route_fills_to_both_traders_and_views_follow():
    async def scenario():
        node, seq, adapter = make()
        alice, bob = Trader(b"\xa1" * 32, DOMAIN, lambda: T0), Trader(b"\xb0" * 32, DOMAIN, lambda: T0)
        fund(seq, [alice, bob])
        ask = alice.place_order("ETHP", 1, 1_000_000, 2_000 * 10**6)
        await node.service.submit(ask.to_json())
        book = render.book_doc(adapter.book(ETHP))
        assert book["asks"] == [[str(2_000 * 10**6), "1000000"]] and book["bids"] == []
        bid = bob.place_order("ETHP", 0, 400_000, 2_000 * 10**6, order_type=1)
        record = await node.service.submit(bid.to_json())
        assert record.request_index == 4
        kinds = [u.kind for u in node.feeds.recent(0, 1000, None, None)]
        assert "Fill" in kinds and kinds.count("Accepted") >= 4
        fills = [u for u in node.feeds.recent(0, 1000, None, None) if u.kind == "Fill"]
        assert set(fills[0].traders) == {alice.address, bob.address}
        bob_view = render.trader_doc(adapter.trader(bob.address))
        assert bob_view["positions"][0]["size"] == "400000"
        alice_orders = render.trader_doc(adapter.trader(alice.address))["openOrders"]
        assert alice_orders[0]["orderHash"] == "0x" + ask.request_hash.hex() and alice_orders[0]["remaining"] == "600000"
        rejected = await node.service.submit(alice.place_order("ETHP", 1, 1_000_000, 2_000 * 10**6 + 1).to_json())
        last = render.update_doc(node.feeds.recent(0, 1000, None, None)[-1])
        assert last["kind"] == "Rejected" and last["data"]["reasonName"] == "bad_price"  # a receipt still: it executed as a rejection
        assert rejected.request_index == 5

    asyncio.run(scenario())


def test_withdrawal_proof_verifies_against_the_frozen_root():
    async def scenario():
        node, seq, adapter = make()
        alice = Trader(b"\xa1" * 32, DOMAIN, lambda: T0)
        fund(seq, [alice])
        await node.service.submit(alice.withdraw_intent(USDC_BYTES, 1_000 * 10**6).to_json())
        with pytest.raises(ProofUnavailable) as refused:
            adapter.withdrawal_proof(alice.address, USDC_BYTES)
        assert refused.value.reason == "no_frozen_epoch"
        seq.append(operator_entry(AdvanceEpoch(b"\x03" * 32, 1)))
        doc = render.proof_doc(adapter.withdrawal_proof(alice.address, USDC_BYTES))
        assert doc["epoch"] == "1" and doc["included"] and doc["cumulative"] == str(1_000 * 10**6)
        assert verify_inclusion(bytes.fromhex(doc["root"][2:]), InclusionProof.from_json(doc["proof"]))
        assert node.engine.epoch() == 1

    asyncio.run(scenario())


def test_a_leader_cannot_smuggle_a_trader_command_through_the_operator_tag():
    node, seq, adapter = make()
    fund(seq, [Trader(b"\xa1" * 32, DOMAIN)])
    victim = address_of(b"\xa1" * 32)
    smuggled = operator_entry(EnginePlaceOrder(b"\x09" * 32, victim, b"main".ljust(32, b"\x00"), ETHP, 0, 0, 2_000 * 10**6, 1_000, False))
    before = adapter.state_root()
    outcomes = []
    node.service.listeners.append(lambda applied: outcomes.append((applied.status, applied.reason)))
    seq.append(smuggled)
    seq.append(b"\x02\xff")
    assert outcomes == [(REFUSED, "not_an_operator_command"), (REFUSED, "malformed_command")]
    assert adapter.state_root() == before
    assert adapter.trader(victim).open_orders == []
    assert node.machine.next_request_index == 5  # both entries took a request index, as refused entries do


def test_replicas_reach_the_same_root_and_a_snapshot_restores_it():
    async def scenario():
        a_node, a_seq, a = make()
        alice, bob = Trader(b"\xa1" * 32, DOMAIN, lambda: T0), Trader(b"\xb0" * 32, DOMAIN, lambda: T0)
        fund(a_seq, [alice, bob])
        for i in range(10):
            side = i % 2
            who = alice if side else bob
            await a_node.service.submit(who.place_order("ETHP", side, 100_000, (2_000 + (i % 3)) * 10**6).to_json())
        b_node, b_seq, b = make()
        for index, entry in enumerate(a_seq.log, start=1):
            b_node.service.apply_committed(index, entry)
        assert b.state_root() == a.state_root()
        c_node, _, c = make()
        c_node.service.restore(a_node.service.snapshot())
        assert c.state_root() == a.state_root() and c_node.machine.next_request_index == a_node.machine.next_request_index

    asyncio.run(scenario())


def test_sdk_fetches_and_checks_withdrawal_proofs_over_http():
    from aiohttp.test_utils import TestClient, TestServer

    from ddx_offchain.api.server import build_app
    from ddx_offchain.client import DdxClient
    from ddx_offchain.client.api import BadReceipt
    from ddx_offchain.protocol.items import balance_key, balance_value

    async def scenario():
        node, seq, adapter = make()
        alice, bob = Trader(b"\xa1" * 32, DOMAIN, lambda: T0), Trader(b"\xb0" * 32, DOMAIN, lambda: T0)
        fund(seq, [alice])
        server = TestClient(TestServer(build_app(node)))
        await server.start_server()
        try:
            async with DdxClient(str(server.make_url("/")), DOMAIN, {address_of(b"\x0e" * 32)}) as client:
                resp = await server.get(f"/v1/proofs/withdrawal/0x{alice.address.hex()}/{USDC}")
                assert resp.status == 404 and (await resp.json())["error"] == "no_frozen_epoch"
                await client.submit(alice.withdraw_intent(USDC_BYTES, 5 * 10**6))
                seq.append(operator_entry(AdvanceEpoch(b"\x03" * 32, 1)))
                doc = await client.withdrawal_proof(alice.address, USDC_BYTES)
                assert doc["included"] and doc["cumulative"] == "5000000"
                absent = await client.withdrawal_proof(bob.address, USDC_BYTES)
                assert absent["included"] is False and absent["root"] == doc["root"]
                balance = await client.balance_proof(alice.address, USDC_BYTES, epoch=1)
                assert balance["included"] and balance["deposited"] == str(10_000 * 10**6) and balance["root"] == doc["root"]
                no_leaf = await client.balance_proof(bob.address, USDC_BYTES)
                assert no_leaf["included"] is False and no_leaf["amount"] == "0"
                lying = {"included": True, "root": balance["root"], "amount": "1", "deposited": balance["deposited"], "proof": balance["proof"]}
                with pytest.raises(BadReceipt, match="does not fold"):
                    client._check_leaf(lying, balance_key(alice.address, USDC_BYTES),
                                       lambda: balance_value(alice.address, USDC_BYTES, 1, int(balance["deposited"])), "balance")
                state = await client.trader_state(alice.address)
                assert state["balances"] == [{"token": USDC, "withdrawable": "5000000"}]
        finally:
            await server.close()

    asyncio.run(scenario())


def test_operator_commands_are_sequenced_and_report_how_they_applied():
    async def scenario():
        node, seq, adapter = make()
        alice = Trader(b"\xa1" * 32, DOMAIN, lambda: T0)
        block = ChainBlock(b"\x01" * 32, 1, b"\x0b" * 32, (Deposit(1, alice.address, b"main".ljust(32, b"\x00"), USDC_BYTES, 7 * 10**6),))
        applied = await node.service.propose_operator_command(encode_command(block))
        assert applied.status == SEQUENCED and [u.kind for u in applied.updates][0] == "Accepted"
        assert any(u.kind == "DepositCredited" and u.traders == (alice.address,) for u in applied.updates)
        again = await node.service.propose_operator_command(encode_command(ChainBlock(b"\x02" * 32, 1, b"\x0b" * 32, ())))
        rejected = again.updates[0].update
        assert isinstance(rejected, Rejected) and rejected.reason == Reject.BLOCK_NOT_NEWER
        assert adapter.trader(alice.address).strategies[0].collateral == 7 * 10**6

    asyncio.run(scenario())


def test_balance_proof_proves_the_escape_leaf_or_its_absence():
    from ddx_offchain.protocol import items
    from ddx_offchain.protocol.proof import NonInclusionProof, verify_non_inclusion

    node, seq, adapter = make()
    alice, bob = Trader(b"\xa1" * 32, DOMAIN, lambda: T0), Trader(b"\xb0" * 32, DOMAIN, lambda: T0)
    fund(seq, [alice])
    with pytest.raises(ProofUnavailable, match="no epoch"):
        adapter.balance_proof(alice.address, USDC_BYTES)
    seq.append(operator_entry(AdvanceEpoch(b"\x03" * 32, 1)))
    doc = render.proof_doc(adapter.balance_proof(alice.address, USDC_BYTES))
    root = bytes.fromhex(doc["root"][2:])
    assert doc["epoch"] == "1" and doc["included"] and doc["deposited"] == str(10_000 * 10**6)
    proof = InclusionProof.from_json(doc["proof"])
    expected = items.balance_value(alice.address, USDC_BYTES, int(doc["amount"]), int(doc["deposited"]))
    assert proof.key == items.balance_key(alice.address, USDC_BYTES) and proof.value_hash == items.value_hash(expected)
    assert verify_inclusion(root, proof) and int(doc["amount"]) == 10_000 * 10**6  # no positions: all of it
    absent = render.proof_doc(adapter.balance_proof(bob.address, USDC_BYTES))
    assert absent["included"] is False and absent["amount"] == absent["deposited"] == "0"
    missing = NonInclusionProof.from_json(absent["proof"])
    assert missing.key == items.balance_key(bob.address, USDC_BYTES) and verify_non_inclusion(root, missing)
    with pytest.raises(ProofUnavailable) as refused:
        adapter.balance_proof(alice.address, USDC_BYTES, epoch=7)
    assert refused.value.reason == "unknown_epoch"


def test_proof_endpoints_default_to_the_last_recorded_epoch_and_take_an_epoch():
    from aiohttp.test_utils import TestClient, TestServer

    from ddx_offchain.api.server import build_app

    async def scenario():
        node, seq, adapter = make()
        alice = Trader(b"\xa1" * 32, DOMAIN, lambda: T0)
        fund(seq, [alice])
        await node.service.submit(alice.withdraw_intent(USDC_BYTES, 7 * 10**6).to_json())
        seq.append(operator_entry(AdvanceEpoch(b"\x03" * 32, 1)))
        await node.service.submit(alice.withdraw_intent(USDC_BYTES, 3 * 10**6).to_json())
        seq.append(operator_entry(AdvanceEpoch(b"\x04" * 32, 2)))
        chain = FakeCheckpoints()
        server = TestClient(TestServer(build_app(node)))
        await server.start_server()
        path = f"0x{alice.address.hex()}/{USDC}"
        try:
            async def get(kind: str, query: str = "") -> tuple[int, dict]:
                resp = await server.get(f"/v1/proofs/{kind}/{path}{query}")
                return resp.status, await resp.json()

            for kind in ("withdrawal", "balance"):
                assert (await get(kind))[1]["epoch"] == "2"  # no chain side: the latest frozen epoch
            node.attach_checkpoints(chain)  # a chain side that has recorded nothing yet
            status, doc = await get("withdrawal")
            assert status == 404 and doc["error"] == "no_recorded_epoch"
            chain.recorded = 1
            status, doc = await get("withdrawal")
            assert status == 200 and doc["epoch"] == "1" and doc["cumulative"] == str(7 * 10**6)  # recorded, not frozen
            status, doc = await get("withdrawal", "?epoch=2")
            assert status == 200 and doc["epoch"] == "2" and doc["cumulative"] == str(10 * 10**6)
            status, doc = await get("balance", "?epoch=2")
            assert status == 200 and doc["epoch"] == "2" and doc["amount"] == str((10_000 - 10) * 10**6)
            assert (await get("balance"))[1]["epoch"] == "1"
            for bad in ("?epoch=0", "?epoch=-1", "?epoch=x", "?epoch=1e3"):
                status, doc = await get("balance", bad)
                assert status == 400 and doc["error"] == "bad_query", bad
            status, doc = await get("withdrawal", "?epoch=9")
            assert status == 404 and doc["error"] == "unknown_epoch"
            resp = await server.get(f"/v1/proofs/balance/0x12/{USDC}")
            assert resp.status == 400 and (await resp.json())["error"] == "bad_path"
        finally:
            await server.close()

    asyncio.run(scenario())


def test_the_first_proof_of_an_epoch_rebuilds_its_tree_off_the_event_loop(monkeypatch):
    """A retained epoch's tree is rebuilt on first use (seconds on a large state): the API asks the adapter to
    prepare it on a worker thread, so the loop only takes the copy of the inputs and the cached proof walk."""
    node, seq, adapter = make()
    fund(seq, [Trader(b"\xa1" * 32, DOMAIN)])
    seq.append(operator_entry(AdvanceEpoch(b"\x03" * 32, 1)))
    threads = []
    real = asyncio.to_thread

    async def recording(fn, *args):
        threads.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", recording)
    assert not adapter.engine.has_epoch_tree(1)
    asyncio.run(adapter.prepare_proofs(None))
    assert len(threads) == 1 and adapter.engine.has_epoch_tree(1)
    asyncio.run(adapter.prepare_proofs(1))  # cached: nothing more to build
    assert len(threads) == 1
    proof = adapter.balance_proof(address_of(b"\xa1" * 32), USDC_BYTES)
    assert proof.epoch == 1 and proof.root == adapter.engine.frozen_root(1) and proof.included


def test_a_receipt_of_epoch_e_is_final_with_the_checkpoint_of_epoch_e_plus_one():
    """The receipt's `epoch` is the engine's epoch when the request applied: the last one frozen. Its effects are
    in the root of the *next* epoch frozen (security review finding 9: the docs said "≥ epoch")."""
    async def scenario():
        node, seq, adapter = make()
        alice = Trader(b"\xa1" * 32, DOMAIN, lambda: T0)
        fund(seq, [alice])
        seq.append(operator_entry(AdvanceEpoch(b"\x03" * 32, 1)))
        record = await node.service.submit(alice.withdraw_intent(USDC_BYTES, 7 * 10**6).to_json())
        assert record.epoch == 1
        assert not adapter.withdrawal_proof(alice.address, USDC_BYTES, 1).included  # not in epoch 1's root
        seq.append(operator_entry(AdvanceEpoch(b"\x04" * 32, 2)))
        proof = adapter.withdrawal_proof(alice.address, USDC_BYTES, 2)
        assert proof.included and proof.cumulative == 7 * 10**6  # in epoch 2's

    asyncio.run(scenario())
