"""`ddx replica` against a real 3-operator devnet on the embedded chain: it follows an operator's request log,
replays and audits it, serves the operators' read API (books, traders, receipts, request log, proofs) and refuses
writes; it switches source when one fails and resumes from its snapshot after a restart; a replay that disagrees
with a recorded root raises the alarm and stops it vouching for that epoch. And the drill the replica exists for:
every operator gone, every trader escapes with proofs fetched from the replica alone."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from eth_account import Account
from polling import eventually

from ddx_offchain.chain.rpc import Web3ChainRpc
from ddx_offchain.client.api import DdxClient
from ddx_offchain.client.claims import LeafProof, Sender, claim
from ddx_offchain.client.settlement import Settlement
from ddx_offchain.client.signer import Trader
from ddx_offchain.daemon.replica import ReplicaProcess
from ddx_offchain.deployment.artifacts import compile_contract
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.engine.commands import BUY, SELL, IndexPrice, IndexPrices, encode_command, name32
from ddx_offchain.protocol.eip712 import Domain as RequestDomain
from ddx_offchain.protocol.hashing import keccak256
from ddx_offchain.replica.watch import DISPUTED, PENDING, FrozenEpoch, judge

ETHP = name32("ETHP")


def test_judge_compares_the_recorded_root_with_the_replay():
    from ddx_offchain.protocol.inbox import EMPTY_INBOX

    frozen = FrozenEpoch(3, b"\x01" * 32, 10, b"\x02" * 32, EMPTY_INBOX)
    assert judge(frozen, b"\x00" * 32, 3) == (PENDING, None)
    assert judge(frozen, b"\x00" * 32, 4)[0] == "not_recorded"
    assert judge(frozen, b"\x01" * 32, 3) == ("agrees", None)
    verdict, reason = judge(frozen, b"\x09" * 32, 3)
    assert verdict == DISPUTED and "0x0909" in reason


async def _get(http, url):
    async with http.get(url) as resp:
        return resp.status, await resp.json()


async def _recorded_and_audited(http, replica_url: str, exchange, at_least: int = 1):
    status, doc = await _get(http, f"{replica_url}/v1/status")
    recorded = doc["checkpoint"]["lastRecordedEpoch"]
    return recorded if recorded is not None and recorded >= at_least else None


def test_replica_follows_serves_the_read_api_refuses_writes_and_audits(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            replica = await cluster.start_replica()
            key = keccak256(b"replica trader")
            address = Account.from_key(key).address
            token = cluster.token.address
            cluster.fund(address, 100 * DOLLAR)
            cluster.deposit(key, 60 * DOLLAR)
            domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
            async with aiohttp.ClientSession() as http, DdxClient(cluster.api_urls, domain, operators) as client:

                async def credited_on_the_replica():
                    status, doc = await _get(http, f"{replica.url}/v1/traders/{address}")
                    return status == 200 and any(s["collateral"] == str(60 * DOLLAR) for s in doc["strategies"])

                await eventually(credited_on_the_replica, "the deposit credited on the replica", timeout_s=60)
                trader = Trader(key, domain)
                receipt = await client.submit(trader.withdraw_intent(bytes.fromhex(token[2:]), 25 * DOLLAR))

                async def proof_for_the_withdrawal():
                    recorded = await _recorded_and_audited(http, replica.url, cluster.exchange, receipt.epoch + 1)
                    if recorded is None:
                        return None
                    status, doc = await _get(http, f"{replica.url}/v1/proofs/withdrawal/{address}/{token}")
                    return doc if status == 200 and doc["cumulative"] == str(25 * DOLLAR) else None

                doc = await eventually(proof_for_the_withdrawal, "an audited proof on the replica", timeout_s=90)
                assert bytes(cluster.exchange.functions.checkpoint_root(int(doc["epoch"])).call()) == bytes.fromhex(doc["root"][2:])
                _, from_operator = await _get(http, f"{cluster.api_urls[0]}/v1/proofs/withdrawal/{address}/{token}?epoch={doc['epoch']}")
                assert from_operator == doc  # the same leaf, root and proof as an operator serves
                proof = LeafProof.from_api(doc, address, token)
                assert claim(cluster.w3, cluster.exchange, cluster.token, proof, Sender(cluster.w3.eth.accounts[3])).paid == 25 * DOLLAR

                # the same request log, the same receipt (unsigned: a replica holds no key)
                async def same_log():  # history is written behind the apply loop, on both sides
                    _, log_op = await _get(http, f"{cluster.api_urls[1]}/v1/requests?from=1&to=5")
                    _, log_replica = await _get(http, f"{replica.url}/v1/requests?from=1&to=5")
                    return len(log_op["entries"]) == 5 and log_op["entries"] == log_replica["entries"]

                await eventually(same_log, "the same request log on the replica")
                status, unsigned = await _get(http, f"{replica.url}/v1/receipts/0x{receipt.receipt.receipt.request_hash.hex()}")
                assert status == 200 and unsigned["requestIndex"] == str(receipt.request_index) and unsigned["signature"] is None
                # GET /v1/inbox: the engine took the whole inbox (on the replica as on the operators)
                for url in (replica.url, cluster.api_urls[0]):
                    status, inbox = await _get(http, f"{url}/v1/inbox")
                    assert status == 200 and inbox["contract"] == inbox["engine"] and inbox["pendingForced"] == []
                    assert inbox["contract"]["deposits"] == "1" and int(inbox["forcedDeadline"]) > 0
                # writes are refused, naming the operators
                signed = trader.withdraw_intent(bytes.fromhex(token[2:]), 1)
                async with http.post(f"{replica.url}/v1/requests", json=signed.to_json()) as resp:
                    refused = await resp.json()
                    assert resp.status == 421 and refused["error"] == "read_only_replica"
                    assert refused["operators"] == cluster.api_urls
                async with http.get(f"{replica.url}/readyz") as resp:
                    assert resp.status == 200
                async with http.get(f"{replica.url}/metrics") as resp:
                    metrics = await resp.text()
                assert "ddx_replica_audited_epochs" in metrics and "ddx_replica_disputed_epochs 0.0" in metrics

                # a replay that disagrees with a recorded root: alarm, no proofs for that epoch, not ready
                audit = replica.replica.audit
                epoch = int(doc["epoch"])
                frozen = audit.epochs[epoch]
                audit.epochs[epoch] = FrozenEpoch(epoch, keccak256(b"another replay"), frozen.l1_block_number,
                                                  frozen.l1_block_hash, frozen.inbox, inbox_checked=True)
                await audit.tick()
                status, body = await _get(http, f"{replica.url}/v1/proofs/withdrawal/{address}/{token}?epoch={epoch}")
                assert status == 409 and body["error"] == "disputed_epoch"
                async with http.get(f"{replica.url}/readyz") as resp:
                    assert resp.status == 503
                _, st = await _get(http, f"{replica.url}/v1/status")
                assert st["checkpoint"]["state"] == "alarm" and st["checkpoint"]["disputed"][0]["epoch"] == epoch
        finally:
            await cluster.stop()

    asyncio.run(scenario())


def test_replica_switches_source_and_resumes_from_its_snapshot(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            dead = "http://127.0.0.1:9"  # nothing listens there
            replica = await cluster.start_replica(sources=[dead, cluster.api_urls[2]], snapshot_every=1)
            key = keccak256(b"replica restart trader")
            cluster.fund(Account.from_key(key).address, 10 * DOLLAR)
            cluster.deposit(key, 10 * DOLLAR)

            async def caught_up():
                leader = cluster.leader()
                target = leader.node.machine.next_request_index if leader else 0
                return target > 1 and replica.replica.node.machine.next_request_index == target

            await eventually(caught_up, "the replica catching up through its second source", timeout_s=60)
            assert replica.replica.follower.switches >= 1 and "127.0.0.1:9" in replica.replica.follower.last_error
            root = replica.replica.node.engine.state_root()
            at = replica.replica.node.machine.next_request_index
            await replica.stop()
            cluster.replicas.remove(replica)
            again = ReplicaProcess(replica.settings, Web3ChainRpc(cluster.make_async(), cluster.manifest.exchange,
                                                                  compile_contract("Exchange").abi))
            assert again.replica.restore()
            assert again.replica.node.machine.next_request_index == at
            assert again.replica.node.engine.state_root() == root
            await again.replica.stop()
        finally:
            await cluster.stop()

    asyncio.run(scenario())


def test_drill_every_operator_gone_every_trader_escapes_with_proofs_from_the_replica(tmp_path):
    """Issue 10's drill: 3 operators + 1 replica; traders deposit, trade and withdraw; every operator is killed;
    past the escape delay anyone freezes and each trader escapes with the replica's proofs alone. On-chain, each is
    paid exactly what the last checkpoint owes it (balance + uncredited deposits + unclaimed withdrawable), and the
    exchange never pays out more than was deposited."""

    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            replica = await cluster.start_replica()
            token = cluster.token.address
            domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
            keys = {n: keccak256(f"drill {n}".encode()) for n in ("alice", "bob", "carol")}
            address = {n: Account.from_key(k).address for n, k in keys.items()}
            deposits = {"alice": 3_000 * DOLLAR, "bob": 3_000 * DOLLAR, "carol": 500 * DOLLAR}
            for n, amount in deposits.items():
                cluster.fund(address[n], amount + 50 * DOLLAR)
                cluster.deposit(keys[n], amount)
            async with aiohttp.ClientSession() as http, DdxClient(cluster.api_urls, domain, operators) as client:

                async def credited():
                    for n, amount in deposits.items():
                        state = await client.trader_state(bytes.fromhex(address[n][2:]))
                        if not any(s["collateral"] == str(amount) for s in state["strategies"]):
                            return False
                    return True

                await eventually(credited, "deposits credited", timeout_s=60)
                leader = await cluster.wait_for_leader()
                rid = keccak256(b"drill price")
                await leader.node.service.propose_operator_command(encode_command(IndexPrices(rid, (IndexPrice(ETHP, 2_000 * DOLLAR),))))
                traders = {n: Trader(k, domain) for n, k in keys.items()}
                await client.submit(traders["alice"].place_order("ETHP", SELL, 10**6, 2_000 * DOLLAR))
                await client.submit(traders["bob"].place_order("ETHP", BUY, 10**6, 2_000 * DOLLAR))
                await client.submit(traders["carol"].withdraw_intent(bytes.fromhex(token[2:]), 200 * DOLLAR))
                last = await client.submit(traders["bob"].withdraw_intent(bytes.fromhex(token[2:]), 100 * DOLLAR))
                # a deposit the engine never credits before the end (sent after the operators are gone)

                async def covered():
                    recorded = await _recorded_and_audited(http, replica.url, cluster.exchange, last.epoch + 1)
                    return recorded

                final_epoch = await eventually(covered, "a recorded, audited checkpoint covering everything", timeout_s=90)
            for i in range(len(cluster.nodes)):
                await cluster.stop_operator(i)
            late = cluster.deposit(keys["carol"], 50 * DOLLAR)  # after the last checkpoint: returned by the escape
            assert late["status"] == 1
            assert cluster.exchange.functions.latest_epoch().call() >= final_epoch
            delay = cluster.exchange.functions.escape_delay().call()
            now = cluster.w3.eth.get_block("latest")["timestamp"]
            cluster.w3.testing.timeTravel(now + delay + 1)
            cluster.w3.testing.mine(1)
            vault_before = cluster.token.functions.balanceOf(cluster.exchange.address).call()
            paid_total = 0
            async with DdxClient([replica.url], domain, operators) as reader:
                settlement = Settlement(reader, cluster.w3, cluster.exchange, cluster.token.abi)
                latest = cluster.exchange.functions.latest_epoch().call()
                for n in keys:
                    balance, withdrawal = await settlement.escape_proofs(address[n], token)
                    assert balance.epoch == latest
                    claimed = cluster.exchange.functions.claimed(address[n], token).call()
                    on_chain = cluster.exchange.functions.deposited(address[n], token).call()
                    owed = balance.amount + (on_chain - balance.deposited) + ((withdrawal.amount if withdrawal else 0) - claimed)
                    payout = settlement.escape(balance, withdrawal, Sender(cluster.w3.eth.accounts[5]))
                    assert payout.paid == owed and payout.trader_balance_after - payout.trader_balance_before == owed
                    paid_total += payout.paid
            assert cluster.exchange.functions.frozen().call()
            total_deposited = sum(deposits.values()) + 50 * DOLLAR
            vault_after = cluster.token.functions.balanceOf(cluster.exchange.address).call()
            assert paid_total == vault_before - vault_after <= total_deposited
        finally:
            await cluster.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("bad", ["", "nohost", "host:port"])
def test_replica_command_refuses_a_bad_listen_address(tmp_path, bad):
    from ddx_offchain.daemon.replica import main

    assert main(manifest_path=str(tmp_path / "missing.json"), genesis_path="x", sources=["http://a"], rpc_url="http://b",
                data_dir=str(tmp_path), listen=bad, confirmations=0) == 2


def test_the_audit_forgets_old_judged_epochs_but_never_a_disputed_one():
    from ddx_offchain.protocol.inbox import EMPTY_INBOX
    from ddx_offchain.replica import watch

    class Rpc:
        async def latest_epoch(self):
            return 3000

        async def checkpoint_root(self, epoch):
            return b"\x07" * 32 if epoch == 5 else bytes([1]) * 32

    audit = watch.ReplicaAudit(Rpc(), verifier=None)
    for epoch in range(1, 2501):
        audit.epoch_frozen(epoch, bytes([1]) * 32, 0, b"\x00" * 32, EMPTY_INBOX)
    asyncio.run(audit.tick())
    assert audit.is_disputed(5) and 5 in audit.epochs
    assert len(audit.epochs) == watch.KEEP_JUDGED + 1 and audit.last_recorded_epoch() == 2500
