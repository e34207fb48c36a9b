"""Cancel on disconnect over the request channel, through the aiohttp app and the real engine (docs/api.md,
"Cancel on disconnect"): the operator holds the client's signed ScheduleCancel unsequenced and submits exactly those
bytes when the connection ends or the heartbeat lapses; it never holds anything the trader (or an approved agent)
did not sign, never a stale refresh, and drops what it holds when it stops."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from apihelpers import DOMAIN, OPERATOR, EngineOperator, now_ms, running

from ddx_offchain.client import DdxClient, RequestRefused, Trader
from ddx_offchain.engine.reasons import CancelReason
from ddx_offchain.node.admission import AdmissionError
from ddx_offchain.node.disconnect_cancel import DisconnectCancels
from ddx_offchain.protocol.eip712 import address_of
from ddx_offchain.protocol.requests import ScheduleCancel, encode_entry, market_id, sign_request, strategy_id

DOLLAR = 1_000_000
T0 = 1_700_000_000_000
ALICE_KEY, BOB_KEY, AGENT_KEY = b"\xa1" * 32, b"\xb0" * 32, b"\xa9" * 32
MAIN = strategy_id("main")
ETHP = market_id("ETHP")


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def setup(clock=None, engine_time: int = T0):
    """A real-engine node at sequenced time `engine_time` with Alice and Bob funded and one resting buy of Alice's."""
    clock = clock or Clock()
    op = EngineOperator(clock=clock)
    alice, bob = Trader(ALICE_KEY, DOMAIN, clock), Trader(BOB_KEY, DOMAIN, clock)
    op.price(2_000 * DOLLAR)
    op.advance(engine_time)
    for t in (alice, bob):
        op.deposit(t.address, 100_000 * DOLLAR)
    op.request(alice.place_order("ETHP", 0, 100_000, 1_990 * DOLLAR))
    assert len(op.node.view.trader(alice.address).open_orders) == 1
    cancels = DisconnectCancels(op.node.service, op.node.metrics, sweep_every_s=0.02, fire_retry_s=0.01)
    return op, clock, alice, bob, cancels


def arm_frame(tag: str, signed) -> str:
    return json.dumps({"id": tag, "op": "cancelOnDisconnect", "request": None if signed is None else signed.to_json()})


async def exchange(ws, frame: str) -> dict:
    await ws.send_str(frame)
    return json.loads((await ws.receive(timeout=5)).data)


async def outcomes(cancels: DisconnectCancels, n: int) -> None:
    """Wait until `n` held requests were submitted and settled (the server ends a channel after the client's close
    returns)."""
    for _ in range(250):
        if len(cancels.outcomes) >= n:
            break
        await asyncio.sleep(0.02)
    await cancels.settle()
    assert len(cancels.outcomes) == n


def schedule_entries(op) -> int:
    return sum(1 for e in op.sequencer.log if e[:2] == bytes([1, ScheduleCancel.TYPE_ID]))


def run(coro):
    asyncio.run(coro)


def test_armed_then_closed_the_held_request_is_sequenced_and_cancels_the_orders_at_its_time():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            signed = alice.schedule_cancel(T0 + 10_000, market="ETHP")
            answer = await exchange(ws, arm_frame("a1", signed))
            assert answer == {"id": "a1", "cancelOnDisconnect": {
                "status": "armed", "requestHash": "0x" + signed.request_hash.hex(), "time": str(T0 + 10_000),
                "deadline": str(T0 + 5_000), "marginMs": "5000"}}
            # held, not sequenced: an ordinary request on the same channel still works meanwhile
            order = alice.place_order("ETHP", 0, 100_000, 1_980 * DOLLAR)
            assert "receipt" in await exchange(ws, json.dumps({"id": "o", "request": order.to_json()}))
            assert schedule_entries(op) == 0 and op.engine.schedules == {} and cancels.held_count() == 1
            await ws.close()
            await outcomes(cancels, 1)
            (outcome,) = cancels.outcomes
            assert outcome.fired and outcome.cause == "closed" and outcome.record.request_hash == signed.request_hash
            assert op.sequencer.log[-1] == encode_entry(signed)  # exactly the client's signed bytes
            assert schedule_entries(op) == 1 and cancels.held_count() == 0
            (schedule,) = op.engine.schedules.values()
            assert (schedule.trader, schedule.strategy, schedule.market, schedule.time) == (alice.address, MAIN, ETHP, T0 + 10_000)
            receipt = await (await server.get("/v1/receipts/0x" + signed.request_hash.hex())).json()
            assert receipt["requestIndex"] == str(outcome.record.request_index)
            # the orders go when the sequenced time reaches the cancel's time, not before
            op.advance(9_999)
            assert len(op.node.view.trader(alice.address).open_orders) == 2
            op.advance(1)
            assert op.node.view.trader(alice.address).open_orders == [] and op.engine.schedules == {}
            history = [u for u in op.node.feeds.recent(0, 10_000, alice.address, None) if type(u.update).__name__ == "OrderUpdate"]
            assert {u.update.reason for u in history[-2:]} == {CancelReason.SCHEDULED}
            metrics = (await (await server.get("/metrics")).read()).decode()
            assert 'ddx_cancel_on_disconnect_total{event="armed"} 1.0' in metrics
            assert 'ddx_cancel_on_disconnect_total{event="fired"} 1.0' in metrics
            assert "ddx_cancel_on_disconnect_held 0.0" in metrics

    run(scenario())


def test_disarmed_then_closed_nothing_is_sequenced():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            assert (await exchange(ws, arm_frame("a", alice.schedule_cancel(T0 + 10_000))))["cancelOnDisconnect"]["status"] == "armed"
            assert await exchange(ws, arm_frame("d", None)) == {"id": "d", "cancelOnDisconnect": {"status": "disarmed"}}
            logged = len(op.sequencer.log)
            await ws.close()
            await asyncio.sleep(0.05)
            await cancels.settle()
            assert len(op.sequencer.log) == logged and cancels.outcomes == [] and op.engine.schedules == {}
            metrics = (await (await server.get("/metrics")).read()).decode()
            assert 'ddx_cancel_on_disconnect_total{event="disarmed"} 1.0' in metrics
            assert 'event="fired"' not in metrics

    run(scenario())


def test_refused_refreshes_leave_the_held_request_and_a_later_one_replaces_it():
    async def scenario():
        op, clock, alice, bob, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            assert (await exchange(ws, arm_frame("1", alice.schedule_cancel(T0 + 10_000))))["cancelOnDisconnect"]["status"] == "armed"
            forged = sign_request(ScheduleCancel(alice.address, MAIN, b"\0" * 32, T0 + 20_000, 99, T0), DOMAIN, BOB_KEY)
            used = alice.schedule_cancel(T0 + 30_000)
            op.request(alice.place_order("ETHP", 0, 1_000, 1_000 * DOLLAR, nonce=used.request.nonce))  # its nonce, sequenced
            refusals = {
                "cod_not_later": alice.schedule_cancel(T0 + 10_000),  # not later than the held one
                "cod_other_scope": bob.schedule_cancel(T0 + 20_000),  # another trader
                "signer_mismatch": forged,  # Alice's message, Bob's signature: the operator holds only what she signed
                "cod_not_schedule_cancel": alice.place_order("ETHP", 0, 1_000, 1_000 * DOLLAR),
                "nonce_reused": used,
            }
            for reason, signed in refusals.items():
                answer = await exchange(ws, arm_frame(reason, signed))
                assert (answer["id"], answer["error"]) == (reason, reason), answer
            other_market = alice.schedule_cancel(T0 + 20_000, market="ETHP")  # same trader, another scope
            assert (await exchange(ws, arm_frame("m", other_market)))["error"] == "cod_other_scope"
            refreshed = alice.schedule_cancel(T0 + 12_000)
            answer = await exchange(ws, arm_frame("2", refreshed))
            assert answer["cancelOnDisconnect"]["time"] == str(T0 + 12_000)
            assert (await exchange(ws, arm_frame("3", alice.schedule_cancel(T0 + 11_000))))["error"] == "cod_not_later"
            assert schedule_entries(op) == 0
            await ws.close()
            await outcomes(cancels, 1)
            (outcome,) = cancels.outcomes
            assert outcome.fired and outcome.held.signed.request_hash == refreshed.request_hash
            assert schedule_entries(op) == 1 and [s.time for s in op.engine.schedules.values()] == [T0 + 12_000]
            metrics = (await (await server.get("/metrics")).read()).decode()
            assert 'ddx_cancel_on_disconnect_total{event="refreshed"} 1.0' in metrics
            assert 'ddx_cancel_on_disconnect_total{event="refused"} 7.0' in metrics

    run(scenario())


def test_a_request_too_close_to_its_time_or_too_old_to_outlive_the_margin_is_refused():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            for signed in (alice.schedule_cancel(T0 + 5_000), alice.schedule_cancel(0)):
                answer = await exchange(ws, arm_frame("s", signed))
                assert (answer["error"], answer["now"]) == ("cod_too_soon", str(T0))
            old = alice.schedule_cancel(T0 + 600_000)
            clock.now = T0 + 55_000  # inside admission's 60 s window, but within the margin of its end
            assert (await exchange(ws, arm_frame("o", old)))["error"] == "cod_too_soon"
            clock.now = T0 + 61_000
            assert (await exchange(ws, arm_frame("x", old)))["error"] == "stale_timestamp"
            for frame in ('{"id": "p", "op": "other", "request": null}', '{"id": "q", "op": "cancelOnDisconnect"}'):
                assert (await exchange(ws, frame))["error"] == "bad_schema"
            await ws.close()
            await asyncio.sleep(0.05)  # the server saw the close
            await cancels.settle()
            assert cancels.outcomes == [] and schedule_entries(op) == 0

    run(scenario())


def test_an_agent_signed_schedule_cancel_is_held_and_fired_for_its_trader():
    async def scenario():
        op, clock, alice, bob, cancels = setup()
        agent = Trader(AGENT_KEY, DOMAIN, clock, trader=alice.address)
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            # not approved yet: refused like any request of a stranger's key
            assert (await exchange(ws, arm_frame("n", agent.schedule_cancel(T0 + 10_000))))["error"] == "signer_mismatch"
            op.request(alice.approve_agent(address_of(AGENT_KEY), T0 + 3_600_000))
            signed = agent.schedule_cancel(T0 + 10_000)
            assert (await exchange(ws, arm_frame("y", signed)))["cancelOnDisconnect"]["status"] == "armed"
            await ws.close()
            await outcomes(cancels, 1)
            (outcome,) = cancels.outcomes
            assert outcome.fired and outcome.record.sender == address_of(AGENT_KEY)
            (schedule,) = op.engine.schedules.values()
            assert schedule.trader == alice.address
            op.advance(10_000)
            assert op.node.view.trader(alice.address).open_orders == []

    run(scenario())


def test_a_silent_open_connection_lapses_at_the_deadline_and_is_told():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            signed = alice.schedule_cancel(T0 + 10_000)
            assert (await exchange(ws, arm_frame("a", signed)))["cancelOnDisconnect"]["deadline"] == str(T0 + 5_000)
            clock.now = T0 + 4_999
            await asyncio.sleep(0.1)  # several sweeps: not yet
            assert schedule_entries(op) == 0
            clock.now = T0 + 5_000
            notice = json.loads((await ws.receive(timeout=5)).data)
            assert notice["id"] is None
            lapse = notice["cancelOnDisconnect"]
            assert (lapse["status"], lapse["cause"], lapse["requestHash"]) == ("fired", "lapsed", "0x" + signed.request_hash.hex())
            assert lapse["receipt"]["operator"].lower() == "0x" + OPERATOR.hex()
            assert lapse["receipt"]["requestHash"] == "0x" + signed.request_hash.hex()
            assert schedule_entries(op) == 1 and cancels.held_count() == 0
            # the switch is disarmed by the lapse: closing now sequences nothing more
            await ws.close()
            await asyncio.sleep(0.05)  # the server saw the close
            await cancels.settle()
            assert schedule_entries(op) == 1 and len(cancels.outcomes) == 1

    run(scenario())


def test_a_held_request_lapses_before_its_timestamp_leaves_the_admission_window():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            answer = await exchange(ws, arm_frame("a", alice.schedule_cancel(T0 + 600_000)))  # a 10-minute grace
            assert answer["cancelOnDisconnect"]["deadline"] == str(T0 + 55_000)  # timestamp + 60 s - 5 s
            clock.now = T0 + 55_000
            lapse = json.loads((await ws.receive(timeout=5)).data)["cancelOnDisconnect"]
            assert lapse["status"] == "fired"  # still admissible: 55 s old
            assert [s.time for s in op.engine.schedules.values()] == [T0 + 600_000]

    run(scenario())


def test_a_held_request_refused_at_submit_is_logged_and_counted_as_failed(caplog):
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            # its time passed in sequenced time before the connection ended: the engine rejects it (BAD_SCHEDULE)
            ws = await server.ws_connect("/v1/ws/requests")
            await exchange(ws, arm_frame("a", alice.schedule_cancel(T0 + 10_000)))
            op.advance(20_000)
            await ws.close()
            await outcomes(cancels, 1)
            # its nonce was taken by another request meanwhile
            ws = await server.ws_connect("/v1/ws/requests")
            held = alice.schedule_cancel(T0 + 15_000)
            await exchange(ws, arm_frame("b", held))
            op.request(alice.place_order("ETHP", 0, 1_000, 1_000 * DOLLAR, nonce=held.request.nonce))
            await ws.close()
            await outcomes(cancels, 2)
            # the operator stalled past the admission window of its timestamp: never proposed, however it ends
            ws = await server.ws_connect("/v1/ws/requests")
            await exchange(ws, arm_frame("c", alice.schedule_cancel(T0 + 600_000)))
            logged = len(op.sequencer.log)
            clock.now = T0 + 60_001
            await ws.close()
            await asyncio.sleep(0.05)
            await outcomes(cancels, 3)
            assert len(op.sequencer.log) == logged
            assert [(o.fired, o.reason) for o in cancels.outcomes] == [
                (False, "bad_schedule"), (False, "nonce_reused"), (False, "stale_timestamp")
            ]
            assert op.engine.schedules == {} and len(op.node.view.trader(alice.address).open_orders) == 2
            metrics = (await (await server.get("/metrics")).read()).decode()
            assert 'ddx_cancel_on_disconnect_total{event="failed"} 3.0' in metrics
        assert sum("cancel-on-disconnect" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records) == 3

    run(scenario())


def test_a_stopping_server_drops_held_requests_and_does_not_wait_for_its_channels():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            await exchange(ws, arm_frame("a", alice.schedule_cancel(T0 + 10_000)))
            logged = len(op.sequencer.log)
            started = time.monotonic()
            await server.server.close()  # the server stops with the channel open and armed
            assert time.monotonic() - started < 3
            closing = await ws.receive(timeout=5)
            assert closing.data == 1001  # going away
            await asyncio.sleep(0.05)  # the server saw the close
            await cancels.settle()
            assert len(op.sequencer.log) == logged and cancels.outcomes == []
            assert 'ddx_cancel_on_disconnect_total{event="dropped"} 1.0' in op.node.metrics.render().decode()

    run(scenario())


def test_sdk_keeps_refreshing_and_closing_the_channel_fires_the_latest_one():
    async def scenario():
        start = now_ms()
        op, _, alice, _, cancels = setup(clock=now_ms, engine_time=start)
        alice = Trader(ALICE_KEY, DOMAIN)
        async with running(op.node, cancels=cancels) as server:
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}) as client:
                async with client.request_channel() as channel:
                    armed = await channel.keep_cancel_on_disconnect(alice, grace_ms=10_000, every_s=0.02)
                    assert armed.status == "armed" and armed.margin_ms == 5_000 and armed.deadline == armed.time - 5_000
                    await asyncio.sleep(0.2)
                    latest = next(iter(cancels._armed)).held.request.time
                    assert latest > armed.time and channel.refresh_error is None  # refreshed meanwhile
                    with pytest.raises(RequestRefused) as refused:
                        await channel.cancel_on_disconnect(alice.schedule_cancel(armed.time - 1))
                    assert refused.value.reason == "cod_not_later"
                await outcomes(cancels, 1)
                (outcome,) = cancels.outcomes
                assert outcome.fired and outcome.held.request.time >= latest
                (schedule,) = op.engine.schedules.values()
                assert schedule.time == outcome.held.request.time
                op.advance(schedule.time - op.time)
                assert op.node.view.trader(alice.address).open_orders == []

                # stopping the refresher disarms: leaving the channel then cancels nothing
                op.request(alice.place_order("ETHP", 0, 100_000, 1_990 * DOLLAR))
                async with client.request_channel() as channel:
                    await channel.keep_cancel_on_disconnect(alice, grace_ms=10_000, every_s=0.02)
                    await asyncio.sleep(0.05)
                    assert (await channel.stop_cancel_on_disconnect()).status == "disarmed"
                logged = len(op.sequencer.log)
                await asyncio.sleep(0.05)
                await cancels.settle()
                assert len(cancels.outcomes) == 1 and len(op.sequencer.log) == logged

    run(scenario())


def test_sdk_reports_a_lapse():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            async with DdxClient(str(server.make_url("/")), DOMAIN, {OPERATOR}) as client:
                async with client.request_channel() as channel:
                    await channel.cancel_on_disconnect(alice.schedule_cancel(T0 + 10_000))
                    clock.now = T0 + 6_000
                    for _ in range(100):
                        if channel.lapses:
                            break
                        await asyncio.sleep(0.02)
                    (lapse,) = channel.lapses
                    assert lapse["status"] == "fired" and lapse["cause"] == "lapsed"
                    client.verify(cancels.outcomes[0].held.signed, lapse["receipt"])  # a receipt like any other
                    assert (await channel.cancel_on_disconnect(None)).status == "disarmed"

    run(scenario())


def test_a_closing_registry_holds_nothing_new():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        switch = cancels.open()
        switch.arm(alice.schedule_cancel(T0 + 10_000).to_json())
        await cancels.close()
        assert switch.held is None and cancels.held_count() == 0
        with pytest.raises(AdmissionError) as refused:
            switch.arm(alice.schedule_cancel(T0 + 20_000).to_json())
        assert refused.value.reason == "cod_unavailable"
        switch.end()
        await cancels.settle()
        assert schedule_entries(op) == 0 and cancels.outcomes == []

    run(scenario())


def test_a_dropped_proposal_is_retried_with_the_same_bytes():
    async def scenario():
        from ddx_offchain.node.sequencer import DefinitelyNotSequenced

        op, clock, alice, _, cancels = setup()
        async with running(op.node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            signed = alice.schedule_cancel(T0 + 10_000)
            await exchange(ws, arm_frame("a", signed))
            op.sequencer.fail_next = DefinitelyNotSequenced("dropped by Raft")
            proposed = op.sequencer.proposed
            await ws.close()
            await asyncio.sleep(0.05)
            await outcomes(cancels, 1)
            (outcome,) = cancels.outcomes
            assert outcome.fired and op.sequencer.proposed == proposed + 1 and schedule_entries(op) == 1
            metrics = op.node.metrics.render().decode()
            assert 'ddx_requests_total{outcome="not_sequenced"} 1.0' in metrics

    run(scenario())


def test_arming_is_rate_limited_like_any_request_and_a_limited_refresh_keeps_the_held_one():
    async def scenario():
        from apihelpers import make_node

        from ddx_offchain.node.rate_limits import BucketSpec, RateLimitSettings

        rate_clock = Clock(5_000_000)
        settings = RateLimitSettings(trader=None, ip=None, connection=BucketSpec(2, 1), read=None)
        node, seq = make_node(rate_limits=settings, rate_clock_ms=rate_clock)
        alice = Trader(ALICE_KEY, DOMAIN)
        cancels = DisconnectCancels(node.service, node.metrics)
        async with running(node, cancels=cancels) as server:
            ws = await server.ws_connect("/v1/ws/requests")
            start = now_ms()
            kept = alice.schedule_cancel(start + 20_000)
            for tag, signed in (("1", alice.schedule_cancel(start + 10_000)), ("2", kept)):
                assert (await exchange(ws, arm_frame(tag, signed)))["cancelOnDisconnect"]["status"] == "armed"
            answer = await exchange(ws, arm_frame("3", alice.schedule_cancel(start + 30_000)))
            assert (answer["error"], answer["bucket"]) == ("rate_limited", "connection")
            await ws.close()
            await outcomes(cancels, 1)
            (outcome,) = cancels.outcomes
            assert outcome.fired and outcome.held.signed.request_hash == kept.request_hash and len(seq.log) == 1

    run(scenario())


def test_a_replica_holds_nothing():
    async def scenario():
        op, clock, alice, _, cancels = setup()
        op.node.service.operator_address = None  # what a replica's service is: no operator key, nothing to sequence
        switch = cancels.open()
        with pytest.raises(AdmissionError) as refused:
            switch.arm(alice.schedule_cancel(T0 + 10_000).to_json())
        assert refused.value.reason == "read_only_replica" and switch.held is None

    run(scenario())
