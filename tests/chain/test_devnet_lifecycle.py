"""The whole lifecycle on the embedded chain with a real 3-operator cluster (Raft over loopback TLS, engine, API,
watcher, verifiers, checkpointers): deposit → credited → withdraw intent with a verified receipt → checkpoint by a
quorum → proof from the API → claim with plain web3 → tokens received; a second claim pays nothing."""

from __future__ import annotations

import asyncio

import aiohttp
from eth_account import Account
from polling import eventually

from ddx_offchain.client.api import DdxClient
from ddx_offchain.client.claims import LeafProof, Sender, claim
from ddx_offchain.client.signer import Trader
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.protocol.eip712 import Domain as RequestDomain
from ddx_offchain.protocol.hashing import keccak256


def test_deposit_trade_withdraw_checkpoint_claim_on_a_real_cluster(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            key = keccak256(b"lifecycle trader")
            address = Account.from_key(key).address
            cluster.fund(address, 100 * DOLLAR)
            cluster.deposit(key, 60 * DOLLAR)
            token = cluster.token.address
            request_domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
            async with aiohttp.ClientSession() as http, DdxClient(cluster.api_urls, request_domain, operators) as client:

                async def credited():
                    async with http.get(f"{cluster.api_urls[0]}/v1/traders/{address}") as resp:
                        doc = await resp.json()
                    return any(s["collateral"] == str(60 * DOLLAR) for s in doc["strategies"])

                await eventually(credited, "the deposit to be credited on operator 1")
                trader = Trader(key, request_domain)
                receipt = await client.submit(trader.withdraw_intent(bytes.fromhex(token[2:]), 25 * DOLLAR))
                assert receipt.request_index > 0

                async def recorded_proof():
                    async with http.get(f"{cluster.api_urls[1]}/v1/proofs/withdrawal/{address}/{token}") as resp:
                        if resp.status != 200:
                            return None
                        doc = await resp.json()
                    if int(doc["epoch"]) <= receipt.epoch or doc["cumulative"] == "0":
                        return None
                    root = bytes(cluster.exchange.functions.checkpoint_root(int(doc["epoch"])).call())
                    return doc if root == bytes.fromhex(doc["root"][2:]) else None

                doc = await eventually(recorded_proof, "a recorded checkpoint covering the withdrawal", timeout_s=60)
                proof = LeafProof.from_api(doc, address, token)
                relayer = Sender(cluster.w3.eth.accounts[3])
                payout = claim(cluster.w3, cluster.exchange, cluster.token, proof, relayer)
                assert payout.paid == 25 * DOLLAR
                assert cluster.token.functions.balanceOf(address).call() == 65 * DOLLAR
                assert claim(cluster.w3, cluster.exchange, cluster.token, proof, relayer).paid == 0

                async with http.get(f"{cluster.api_urls[2]}/v1/status") as resp:
                    status = await resp.json()
                assert status["checkpoint"]["lastRecordedEpoch"] >= int(doc["epoch"])
                async with http.get(f"{cluster.api_urls[2]}/metrics") as resp:
                    metrics = await resp.text()
                assert "ddx_checkpoint_last_recorded_epoch" in metrics and "ddx_chain_rpc_failures" in metrics

                async def history_has_the_stages():  # GET /v1/checkpoints, from each stage change
                    async with http.get(f"{cluster.api_urls[2]}/v1/checkpoints") as resp:
                        items = (await resp.json())["checkpoints"]
                    return any(item["epoch"] == doc["epoch"] and item["stage"] in ("recorded", "final") for item in items)

                await eventually(history_has_the_stages, "checkpoint progress in the node's history")
                assert status["raft"]["leader"] is not None
                # every operator froze the same root for that epoch
                roots = {running.node.engine.engine.frozen_root(int(doc["epoch"])) for running in cluster.nodes}
                assert roots == {proof.root}
        finally:
            await cluster.stop()

    asyncio.run(asyncio.wait_for(scenario(), 240))  # a hang fails the test instead of CI


def test_the_devnet_demo_scenario_shows_both_clocks(tmp_path):
    """What `ddx devnet --demo` (and `make demo`) runs: trading with a liquidation, a withdrawal, a checkpoint, a claim."""
    from ddx_offchain.devnet.scenario import run_scenario

    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        lines: list[str] = []
        try:
            summary = await run_scenario(cluster, lines.append)
            await auditor_agrees_and_catches_a_forged_log(cluster)
        finally:
            await cluster.stop()
        text = "\n".join(lines)
        assert summary["liquidations"] == 1
        assert summary["forced_seq"] == 1 and summary["replica_audited_epoch"] >= summary["epoch"]
        assert "forces a withdrawal" in text and "the engine took alice's forced withdrawal" in text
        assert summary["claimed"] == 1_000 * DOLLAR and summary["second_claim"] == 0
        assert "receipt #" in text and " ms " in text  # the sequencing clock, in milliseconds
        assert "alice's agent: an all-or-nothing batch" in text and "her stop-loss cancelled with the position" in text
        for stage in ("built", "submitted", "recorded"):
            assert f"epoch {summary['epoch']} {stage}" in text
        # Stages are sampled once per checkpointer tick, so an operator can pass through one unseen: "signed" when
        # the others signed first, "quorum" when it learns of the recording before it has collected every
        # signature. Some operator always shows one of the two.
        assert f"epoch {summary['epoch']} signed" in text or f"epoch {summary['epoch']} quorum" in text

    asyncio.run(asyncio.wait_for(scenario(), 240))  # a hang fails the test instead of CI


async def auditor_agrees_and_catches_a_forged_log(cluster) -> None:
    """`ddx audit`'s core: replay the public log, compare with the recorded roots; a forged deposit is caught."""
    from ddx_offchain.deployment.genesis import example_genesis, parse_genesis
    from ddx_offchain.engine.commands import ChainBlock, Deposit, decode_command, encode_command
    from ddx_offchain.replica.audit import Replay, audit, log_from_api

    domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
    genesis = parse_genesis(example_genesis(cluster.token.address))
    async with aiohttp.ClientSession() as http:
        log = [item async for item in log_from_api(http, cluster.api_urls[1])]
    honest = Replay(domain, genesis)
    for log_index, entry in log:
        honest.apply(log_index, entry)
    report = await audit(cluster.rpcs[0], honest, cluster.manifest.deployment_block)
    assert report.ok, report.lines()
    assert any(e.verdict == "match" for e in report.epochs) and report.block_problems == []

    forged = Replay(domain, genesis)
    tampered = False
    for log_index, entry in log:
        if not tampered and entry[0] == 0x02:
            command = decode_command(entry[1:])
            if isinstance(command, ChainBlock) and command.deposits:
                d = command.deposits[0]
                fake = Deposit(d.seq, d.trader, d.strategy, d.token, d.amount * 10)
                entry = entry[:1] + encode_command(ChainBlock(command.request_id, command.block_number, command.block_hash, (fake,) + command.deposits[1:]))
                tampered = True
        forged.apply(log_index, entry)
    assert tampered
    report = await audit(cluster.rpcs[0], forged, cluster.manifest.deployment_block)
    assert not report.ok
    assert any(e.verdict == "mismatch" for e in report.epochs)
    assert report.block_problems and "other contents" in report.block_problems[0]
