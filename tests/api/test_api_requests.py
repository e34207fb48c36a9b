"""Admission and receipts over HTTP: reasons for every refusal, receipts only after apply, idempotent retries."""

from __future__ import annotations

import asyncio
import json

import pytest
from apihelpers import DOMAIN, OPERATOR, make_node, now_ms, running, signed_order

from ddx_offchain.node.admission import MAX_BODY_BYTES
from ddx_offchain.protocol.eip712 import SECP256K1_N, Domain
from ddx_offchain.protocol.requests import SignedReceipt, verify_receipt

ALICE = b"\xa1" * 32
BOB = b"\xb0" * 32


def run(coro):
    return asyncio.run(coro)


def test_receipt_is_signed_by_the_operator_and_names_the_sequence_position():
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            signed = signed_order(ALICE, 1)
            resp = await client.post("/v1/requests", json=signed.to_json())
            assert resp.status == 200, await resp.text()
            doc = await resp.json()
            receipt = SignedReceipt.from_json(doc)
            assert verify_receipt(receipt, DOMAIN, {OPERATOR}) == OPERATOR
            assert receipt.receipt.request_hash == signed.request_hash
            assert receipt.receipt.request_index == 1 and receipt.receipt.sender == signed.trader
            assert node.engine.executed == [signed.request_hash]  # executed before the receipt left
            again = await client.get(f"/v1/receipts/0x{signed.request_hash.hex()}")
            assert (await again.json()) == doc

    run(scenario())


def test_retry_with_same_nonce_returns_the_same_receipt_and_executes_once():
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            signed = signed_order(ALICE, 5)
            first, second = await asyncio.gather(
                client.post("/v1/requests", json=signed.to_json()), client.post("/v1/requests", json=signed.to_json())
            )
            third = await client.post("/v1/requests", json=signed.to_json())
            bodies = [await r.json() for r in (first, second, third)]
            assert bodies[0] == bodies[1] == bodies[2]
            assert seq.proposed == 1 and len(node.engine.executed) == 1
            conflicting = signed_order(ALICE, 5, price=101)
            resp = await client.post("/v1/requests", json=conflicting.to_json())
            assert resp.status == 409 and (await resp.json())["error"] == "nonce_reused"
            assert seq.proposed == 1

    run(scenario())


def test_duplicate_committed_twice_after_a_leader_change_gets_the_original_receipt():
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            from ddx_offchain.protocol.requests import encode_entry

            signed = signed_order(ALICE, 9)
            seq.append(encode_entry(signed))  # an old leader committed it; this node's client never heard back
            seq.append(encode_entry(signed))  # and a new leader committed the retried copy too
            resp = await client.post("/v1/requests", json=signed.to_json())
            doc = await resp.json()
            assert doc["requestIndex"] == "1" and len(node.engine.executed) == 1

    run(scenario())


def mutations():
    def high_s(doc):
        sig = bytes.fromhex(doc["signature"][2:])
        s = int.from_bytes(sig[32:64], "big")
        doc["signature"] = "0x" + (sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])).hex()

    return [
        ("malformed_json", 400, None),
        ("high_s", 401, high_s),
        ("bad_sig_format", 400, lambda d: d.update(signature="0x1234")),
        ("wrong_v", 400, lambda d: d.update(signature=d["signature"][:-2] + "1f")),
        ("tampered", 401, lambda d: d["message"].update(size="2")),
        ("wrong_domain", 400, lambda d: d.update(domain={"chainId": "1", "verifyingContract": "0x" + "5a" * 20})),
        ("stale", 400, lambda d: d["message"].update(timestamp=str(now_ms() - 120_000))),
        ("future", 400, lambda d: d["message"].update(timestamp=str(now_ms() + 60_000))),
        ("unknown_type", 400, lambda d: d.update(type="Transfer")),
        ("wrong_type", 400, lambda d: d["message"].update(price=100)),
        ("extra_key", 400, lambda d: d.update(note="hi")),
    ]


@pytest.mark.parametrize("name, status, mutate", mutations(), ids=[m[0] for m in mutations()])
def test_refusals_have_a_status_and_a_reason_and_are_never_proposed(name, status, mutate):
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            doc = signed_order(ALICE, 1).to_json()
            if mutate is None:
                body = b'{"type": "PlaceOrder", '
            else:
                mutate(doc)
                body = json.dumps(doc).encode()
            resp = await client.post("/v1/requests", data=body)
            out = await resp.json()
            assert resp.status == status, out
            assert isinstance(out["error"], str) and out["detail"]
            if name in ("high_s", "tampered"):
                assert out["error"] == {"high_s": "malleable_signature", "tampered": "signer_mismatch"}[name]
            else:
                assert name.startswith(out["error"]) or out["error"] in ("bad_field", "bad_schema", "bad_signature_format", "stale_timestamp", "future_timestamp", "unknown_type")
            assert seq.proposed == 0 and seq.log == []

    run(scenario())


def test_request_signed_for_another_chain_is_refused():
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            other = signed_order(ALICE, 1, domain=Domain.of(1, "0x" + "5a" * 20))
            resp = await client.post("/v1/requests", json=other.to_json())
            assert resp.status == 401 and (await resp.json())["error"] == "signer_mismatch"
            assert seq.log == []

    run(scenario())


def test_oversized_body_is_refused_before_parsing():
    async def scenario():
        node, seq = make_node()
        async with running(node) as client:
            resp = await client.post("/v1/requests", data=b"{" + b" " * MAX_BODY_BYTES + b"}")
            assert resp.status == 413 and (await resp.json())["error"] == "body_too_large"

            async def chunks():
                for _ in range(MAX_BODY_BYTES // 1000 + 1):
                    yield b" " * 1000

            resp = await client.post("/v1/requests", data=chunks())  # no Content-Length: streamed
            assert resp.status == 413 and (await resp.json())["error"] == "body_too_large"
            assert seq.log == []

    run(scenario())


def test_follower_answers_with_the_leader_and_proposes_nothing():
    async def scenario():
        node, seq = make_node()
        seq.leader = False
        async with running(node) as client:
            resp = await client.post("/v1/requests", json=signed_order(ALICE, 1).to_json())
            out = await resp.json()
            assert resp.status == 421 and out["error"] == "not_leader" and out["leader"] == "http://127.0.0.1:9/"
            assert seq.log == []

    run(scenario())


def test_lost_leadership_mid_proposal_is_an_unknown_outcome_and_a_retry_is_exactly_once():
    async def scenario():
        from ddx_offchain.node.sequencer import SequencingError

        node, seq = make_node()
        async with running(node) as client:
            signed = signed_order(BOB, 3)
            seq.fail_next = SequencingError("leadership lost")
            resp = await client.post("/v1/requests", json=signed.to_json())
            assert resp.status == 503 and (await resp.json())["error"] == "outcome_unknown"
            assert node.engine.executed == []
            resp = await client.post("/v1/requests", json=signed.to_json())
            assert resp.status == 200 and node.engine.executed == [signed.request_hash]

    run(scenario())


def test_unknown_routes_and_methods_answer_json():
    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            resp = await client.get("/v1/nothing")
            assert resp.status == 404 and (await resp.json())["error"] == "not_found"
            resp = await client.get("/v1/requests/x")
            assert resp.status == 404
            resp = await client.put("/v1/requests", data=b"{}")
            assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"
            resp = await client.get("/v1/requests?from=%C2%B2")  # "²" is a Unicode digit, not a number
            assert resp.status == 400 and (await resp.json())["error"] == "bad_query"
            resp = await client.get("/v1/receipts/0x1234")
            assert resp.status == 400 and (await resp.json())["error"] == "bad_path"
            resp = await client.get("/v1/receipts/0x" + "ab" * 32)
            assert resp.status == 404 and (await resp.json())["error"] == "unknown_request"

    run(scenario())


def test_overload_is_refused_before_proposing():
    async def scenario():
        node, seq = make_node()
        node.service.max_in_flight = 1
        release = asyncio.Event()
        real_propose = seq.propose

        async def slow_propose(data):
            await release.wait()
            return await real_propose(data)

        seq.propose = slow_propose
        async with running(node, max_subscribers=1) as client:
            first = asyncio.create_task(client.post("/v1/requests", json=signed_order(ALICE, 1).to_json()))
            await asyncio.sleep(0.1)
            second = await client.post("/v1/requests", json=signed_order(BOB, 1).to_json())
            assert second.status == 503 and (await second.json())["error"] == "overloaded"
            release.set()
            assert (await first).status == 200 and len(seq.log) == 1
            ws = await client.ws_connect("/v1/ws?channel=all")
            await ws.receive()  # snapshot
            refused = await client.get("/v1/ws?channel=all", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            assert refused.status == 503 and (await refused.json())["error"] == "too_many_subscribers"
            await ws.close()

    run(scenario())


def _gated(seq):
    """Make the in-memory sequencer hold every proposal until the returned event is set."""
    release = asyncio.Event()
    real_propose = seq.propose

    async def gated_propose(data):
        await release.wait()
        return await real_propose(data)

    seq.propose = gated_propose
    return release


def test_a_retry_arriving_while_the_first_copy_is_in_flight_waits_for_its_receipt():
    async def scenario():
        node, seq = make_node()
        release = _gated(seq)
        async with running(node) as client:
            signed = signed_order(ALICE, 9)
            first = asyncio.create_task(client.post("/v1/requests", json=signed.to_json()))
            await asyncio.sleep(0.1)
            second = asyncio.create_task(client.post("/v1/requests", json=signed.to_json()))
            await asyncio.sleep(0.1)
            assert not first.done() and not second.done()  # the retry waits on the first copy, proposes nothing
            release.set()
            answers = [await (await first).json(), await (await second).json()]
            assert answers[0] == answers[1] and answers[0]["requestIndex"] == "1"
            assert seq.proposed == 1 and node.engine.executed == [signed.request_hash]

    run(scenario())


def test_a_retry_waiting_on_a_first_copy_that_fails_learns_the_outcome_is_unknown():
    async def scenario():
        from ddx_offchain.node.sequencer import SequencingError

        node, seq = make_node()
        release = _gated(seq)
        async with running(node) as client:
            signed = signed_order(ALICE, 10)
            seq.fail_next = SequencingError("leadership lost")
            first = asyncio.create_task(client.post("/v1/requests", json=signed.to_json()))
            await asyncio.sleep(0.1)
            second = asyncio.create_task(client.post("/v1/requests", json=signed.to_json()))
            await asyncio.sleep(0.1)
            release.set()
            for resp in (await first, await second):
                assert resp.status == 503 and (await resp.json())["error"] == "outcome_unknown"
            assert node.engine.executed == [] and node.service._pending == {}

    run(scenario())


@pytest.mark.parametrize("leader_known, reason", [(False, "no_leader"), (True, "not_sequenced")])
def test_a_dropped_proposal_answers_no_leader_only_when_no_leader_is_known(leader_known, reason):
    async def scenario():
        from ddx_offchain.node.sequencer import DefinitelyNotSequenced

        node, seq = make_node()
        seq.fail_next = DefinitelyNotSequenced("dropped by raft")
        seq.leader_id = lambda: 1 if leader_known else None
        async with running(node) as client:
            signed = signed_order(BOB, 4)
            resp = await client.post("/v1/requests", json=signed.to_json())
            assert resp.status == 503 and (await resp.json())["error"] == reason
            assert node.engine.executed == []
            resp = await client.post("/v1/requests", json=signed.to_json())  # definitely not sequenced: retry is safe
            assert resp.status == 200 and node.engine.executed == [signed.request_hash]

    run(scenario())
