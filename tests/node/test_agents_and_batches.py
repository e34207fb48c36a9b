"""Agent keys and batches through the node: admission, the state machine's approval check at apply, nonces per
signer, receipts naming the signer (docs/protocol.md §7.4)."""

from __future__ import annotations

import asyncio

import pytest
from test_engine_adapter import DOMAIN, T0, USDC_BYTES, fund, make, operator_entry

from ddx_offchain.client import Trader, cancel_action, place_action
from ddx_offchain.engine.commands import AdvanceTime
from ddx_offchain.node.admission import AdmissionError
from ddx_offchain.node.state_machine import REFUSED, SEQUENCED
from ddx_offchain.protocol.eip712 import address_of
from ddx_offchain.protocol.requests import batch_action_id, encode_entry, strategy_id

AGENT_KEY = b"\xa9" * 32
AGENT = address_of(AGENT_KEY)


def setup():
    node, seq, adapter = make()
    alice = Trader(b"\xa1" * 32, DOMAIN, lambda: T0)
    bob = Trader(b"\xb0" * 32, DOMAIN, lambda: T0)
    fund(seq, [alice, bob])
    agent = Trader(AGENT_KEY, DOMAIN, lambda: T0, trader=alice.address)
    outcomes = []
    node.service.listeners.append(outcomes.append)
    return node, seq, adapter, alice, bob, agent, outcomes


def advance(seq, ms: int) -> None:
    seq.append(operator_entry(AdvanceTime(ms.to_bytes(32, "big"), ms)))


def test_an_approved_agent_trades_for_its_trader_with_its_own_nonces_and_receipts_name_it():
    async def scenario():
        node, seq, adapter, alice, _, agent, outcomes = setup()
        with pytest.raises(AdmissionError) as refused:  # not approved yet
            await node.service.submit(agent.place_order("ETHP", 1, 1_000_000, 2_100 * 10**6, nonce=1).to_json())
        assert refused.value.reason == "signer_mismatch"
        await node.service.submit(alice.approve_agent(AGENT, T0 + 60_000, nonce=1).to_json())
        order = agent.place_order("ETHP", 1, 1_000_000, 2_100 * 10**6, nonce=1)  # nonce 1 again: the agent's own
        record = await node.service.submit(order.to_json())
        assert record.sender == AGENT and outcomes[-1].status == SEQUENCED and outcomes[-1].sender == AGENT
        (view,) = adapter.trader(alice.address).open_orders
        assert view.order_hash == order.request_hash
        assert adapter.trader(AGENT).open_orders == []

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["withdraw", "approve_another", "create_strategy"])
def test_an_agent_can_never_withdraw_create_strategies_or_approve_agents(kind):
    async def scenario():
        node, seq, adapter, alice, _, agent, outcomes = setup()
        await node.service.submit(alice.approve_agent(AGENT, T0 + 60_000).to_json())
        signed = {
            "withdraw": lambda: agent.withdraw_intent(USDC_BYTES, 1),
            "approve_another": lambda: agent.approve_agent(address_of(b"\x77" * 32), T0 + 60_000),
            "create_strategy": lambda: agent.create_strategy("alt"),
        }[kind]()
        with pytest.raises(AdmissionError) as refused:
            await node.service.submit(signed.to_json())
        assert refused.value.reason == "signer_mismatch"
        # and a faulty leader proposing it anyway: refused at apply on every node
        seq.append(encode_entry(signed))
        assert (outcomes[-1].status, outcomes[-1].reason) == (REFUSED, "signer_mismatch")

    asyncio.run(scenario())


def test_expiry_revocation_strategy_scope_and_a_replay_after_re_approval_all_refuse_at_apply():
    async def scenario():
        node, seq, adapter, alice, _, agent, outcomes = setup()
        advance(seq, T0 - 5_000)
        await node.service.submit(alice.approve_agent(AGENT, T0 + 10_000, strategy="main").to_json())
        old = agent.place_order("ETHP", 1, 1_000_000, 2_100 * 10**6, nonce=7)
        await node.service.submit(old.to_json())
        other_strategy = agent.place_order("ETHP", 1, 1_000_000, 2_100 * 10**6, strategy=strategy_id("alt"))
        seq.append(encode_entry(other_strategy))
        assert (outcomes[-1].status, outcomes[-1].reason) == (REFUSED, "signer_mismatch")
        await node.service.submit(alice.revoke_agent(AGENT, strategy="main").to_json())
        seq.append(encode_entry(agent.cancel("ETHP", old.request_hash)))
        assert (outcomes[-1].status, outcomes[-1].reason) == (REFUSED, "signer_mismatch")
        advance(seq, T0 + 1_000)  # the trader approves the same agent again, later
        await node.service.submit(alice.approve_agent(AGENT, T0 + 10_000, strategy="main").to_json())
        seq.append(encode_entry(old))  # the old signature, replayed: signed before this approval
        assert (outcomes[-1].status, outcomes[-1].reason) == (REFUSED, "agent_request_predates_approval")
        later = Trader(AGENT_KEY, DOMAIN, lambda: T0 + 2_000, trader=alice.address)
        await node.service.submit(later.cancel("ETHP", old.request_hash).to_json())
        assert outcomes[-1].status == SEQUENCED
        advance(seq, T0 + 10_000)
        with pytest.raises(AdmissionError) as refused:
            await node.service.submit(later.cancel_all().to_json())
        assert refused.value.reason == "agent_expired"
        seq.append(encode_entry(later.cancel_all()))
        assert (outcomes[-1].status, outcomes[-1].reason) == (REFUSED, "agent_expired")

    asyncio.run(scenario())


def test_a_batch_is_one_entry_one_receipt_and_each_action_has_its_verdict_in_the_updates():
    async def scenario():
        node, seq, adapter, alice, bob, agent, outcomes = setup()
        ask = alice.place_order("ETHP", 1, 1_000_000, 2_050 * 10**6)
        await node.service.submit(ask.to_json())
        batch = bob.batch([
            place_action("ETHP", 0, 500_000, 2_050 * 10**6, order_type=1),  # takes half the ask
            place_action("ETHP", 0, 1_000_000, 1_900 * 10**6),
            cancel_action("ETHP", b"\x42" * 32),  # nothing to cancel: rejected alone
        ])
        record = await node.service.submit(batch.to_json())
        applied = outcomes[-1]
        assert record.request_index == applied.request_index and applied.status == SEQUENCED
        verdicts = [u.update for u in applied.updates if u.kind in ("Accepted", "Rejected")]
        assert [v.request_id for v in verdicts] == [batch.request_hash] + [batch_action_id(batch.request_hash, i) for i in range(3)]
        assert [u.kind for u in applied.updates if u.kind in ("Accepted", "Rejected")] == ["Accepted"] * 3 + ["Rejected"]
        assert "Fill" in [u.kind for u in applied.updates]
        bids = [o.order_hash for o in adapter.trader(bob.address).open_orders]
        assert bids == [batch_action_id(batch.request_hash, 1)]
        assert all(bob.address in u.traders for u in applied.updates if u.kind in ("Accepted", "Rejected"))

    asyncio.run(scenario())


def test_the_trader_view_lists_its_agents():
    async def scenario():
        node, seq, adapter, alice, _, agent, outcomes = setup()
        advance(seq, T0 - 1_000)
        await node.service.submit(alice.approve_agent(AGENT, T0 + 60_000).to_json())
        from ddx_offchain.api import render

        (doc,) = render.trader_doc(adapter.trader(alice.address))["agents"]
        assert doc == {"agent": render.checksum_address(AGENT), "strategy": "0x" + "00" * 32, "scope": "1",
                       "validFrom": str(T0 - 1_000), "expiry": str(T0 + 60_000), "expired": False}
        advance(seq, T0 + 60_000)
        assert render.trader_doc(adapter.trader(alice.address))["agents"][0]["expired"] is True

    asyncio.run(scenario())



def test_the_trader_view_lists_waiting_triggers_and_running_twaps():
    async def scenario():
        node, seq, adapter, alice, _, _, _ = setup()
        stop = alice.place_trigger("ETHP", 0, 0, 2_100 * 10**6, 1_000_000, client_order_id="s1")
        await node.service.submit(stop.to_json())
        twap = alice.place_twap("ETHP", 0, 4_000, 600_000, 60_000, limit_price=1_000 * 10**6)
        await node.service.submit(twap.to_json())
        from ddx_offchain.api import render

        doc = render.trader_doc(adapter.trader(alice.address))
        (trigger,) = doc["triggers"]
        assert (trigger["triggerId"], trigger["triggerPrice"], trigger["clientOrderId"]) == (
            "0x" + stop.request_hash.hex(), str(2_100 * 10**6), "0x" + b"s1".ljust(32, b"\x00").hex())
        (running,) = doc["twaps"]
        assert (running["twapId"], running["slices"], running["slicesDone"], running["executed"]) == (
            "0x" + twap.request_hash.hex(), "10", "1", "0")  # slice 0 ran at once; nothing offered at 1,000

    asyncio.run(scenario())
