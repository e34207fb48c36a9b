"""Operators as separate `ddx node --config` processes against anvil, the exchange deployed by `ape run deploy`:
deposit → credited → withdraw → checkpoint by the processes' own chain sides → claim with the API's proof."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
from anvil_node import Anvil
from eth_account import Account
from web3 import Web3

from ddx_offchain.client.api import DdxClient
from ddx_offchain.client.claims import LeafProof, Sender, claim
from ddx_offchain.client.signer import Trader
from ddx_offchain.daemon.cluster_files import write_cluster
from ddx_offchain.daemon.keystore import write_keystore
from ddx_offchain.deployment.artifacts import compile_contract
from ddx_offchain.deployment.genesis import example_genesis
from ddx_offchain.devnet.cluster import DOLLAR, ape_deploy
from ddx_offchain.protocol.eip712 import Domain
from ddx_offchain.protocol.hashing import keccak256

OPERATORS = 3
BUDGET_S = 60.0


async def eventually(probe, what: str, deadline: float, interval_s: float = 0.2):
    while time.monotonic() < deadline:
        try:
            result = await probe()
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            result = None
        if result:
            return result
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


def send_as(w3: Web3, key: bytes, call) -> None:
    sender = Account.from_key(key).address
    tx = call.build_transaction({"from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending")})
    tx["gas"] = tx["gas"] * 3 // 2  # as wallets do: the operators' transactions may change the state the estimate saw
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(Account.sign_transaction(tx, key).raw_transaction))
    assert receipt["status"] == 1


def start_operator_processes(anvil: Anvil, tmp_path, procs: list[subprocess.Popen], extra_config: str = ""):
    """Deploy with `ape run deploy`, fund the operators (relayers pay gas), write their files (plus `extra_config`,
    TOML appended to each) and start OPERATORS `ddx node` processes (appended to `procs`). Returns (w3, members,
    manifest, manifest path, cluster files)."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    keys = sorted((os.urandom(32) for _ in range(OPERATORS)), key=lambda k: int(Account.from_key(k).address, 16))
    members = tuple(Account.from_key(k).address for k in keys)
    manifest = ape_deploy(anvil.url, members, tmp_path / "deployments", echo=lambda _: None)
    manifest_path = next((tmp_path / "deployments").iterdir()) / "latest.json"
    for member in members:
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": member, "value": 10**20}))
    files = write_cluster(tmp_path / "ops", OPERATORS, Domain.of(manifest.chain_id, manifest.exchange), example_genesis(manifest.mock_token))
    for i, (config, key) in enumerate(zip(files.configs, keys), start=1):
        write_keystore(files.root / f"op{i}.keystore.json", key, files.password, iterations=2048)
        text = config.read_text()
        assert text.count("[chain]\n") == 1
        config.write_text(text.replace(
            "[chain]\n", f'[chain]\nrpc = "{anvil.url}"\nmanifest = "{manifest_path}"\nepoch_interval_ms = 1000\n'
        ) + extra_config)
    for i, config in enumerate(files.configs, start=1):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ddx_offchain.cli", "node", "--config", str(config)],
            env=files.env(), stdout=open(files.root / f"op{i}.log", "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
    return w3, members, manifest, manifest_path, files


def wait_or_kill(procs: list[subprocess.Popen], timeout_s: float = 20.0) -> None:
    """Wait for each (already signalled) process to exit; kill one that does not in time."""
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def depositing_trader(w3: Web3, manifest, seed: bytes, *, approve: int):
    """A trader with gas and 100 mock dollars that approved `approve` and deposited 60: (exchange, token, key,
    address)."""
    funder = w3.eth.accounts[0]
    exchange = w3.eth.contract(address=manifest.exchange, abi=compile_contract("Exchange").abi)
    token = w3.eth.contract(address=manifest.mock_token, abi=compile_contract("MockERC20").abi)
    key = keccak256(seed)
    address = Account.from_key(key).address
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": funder, "to": address, "value": 10**18}))
    w3.eth.wait_for_transaction_receipt(token.functions.mint(address, 100 * DOLLAR).transact({"from": funder}))
    send_as(w3, key, token.functions.approve(exchange.address, approve))
    send_as(w3, key, exchange.functions.deposit(token.address, 60 * DOLLAR))
    return exchange, token, key, address


def test_deposit_withdraw_checkpoint_claim_with_operator_processes(tmp_path):
    anvil = Anvil("--block-time", "1", "--chain-id", "1337")  # ape's local network id
    procs: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        w3, members, manifest, manifest_path, files = start_operator_processes(anvil, tmp_path, procs)
        funder = w3.eth.accounts[0]

        exchange, token, key, address = depositing_trader(w3, manifest, b"operator processes trader", approve=60 * DOLLAR)
        request_domain = Domain.of(manifest.chain_id, manifest.exchange)
        operators = [bytes.fromhex(m[2:]) for m in members]

        async def scenario():
            deadline = started + BUDGET_S
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:

                async def status(url: str):
                    async with http.get(f"{url}/v1/status") as resp:
                        return await resp.json() if resp.status == 200 else None

                async def chain_sides_running():
                    docs = [await status(url) for url in files.api_urls]
                    return all(d and "watcher" in d["checkpoint"] for d in docs) and any(d["raft"]["isLeader"] for d in docs)

                await eventually(chain_sides_running, "three operators with their chain sides and a leader", deadline)

                async def credited():
                    async with http.get(f"{files.api_urls[0]}/v1/traders/{address}") as resp:
                        doc = await resp.json()
                    return any(s["collateral"] == str(60 * DOLLAR) for s in doc["strategies"])

                await eventually(credited, "the deposit to be credited (watched and sequenced by the leader process)", deadline)
                async with DdxClient(files.api_urls, request_domain, operators) as client:
                    receipt = await client.submit(Trader(key, request_domain).withdraw_intent(bytes.fromhex(token.address[2:]), 25 * DOLLAR))

                async def recorded_proof():
                    async with http.get(f"{files.api_urls[2]}/v1/proofs/withdrawal/{address}/{token.address}") as resp:
                        if resp.status != 200:
                            return None
                        doc = await resp.json()  # default: the last epoch recorded on-chain
                    return doc if int(doc["epoch"]) > receipt.epoch and doc["cumulative"] == str(25 * DOLLAR) else None

                doc = await eventually(recorded_proof, "a recorded checkpoint covering the withdrawal", deadline)
                assert bytes(exchange.functions.checkpoint_root(int(doc["epoch"])).call()).hex() == doc["root"][2:]
                return doc

        doc = asyncio.run(scenario())
        proof = LeafProof.from_api(doc, address, token.address)
        payout = claim(w3, exchange, token, proof, Sender(funder))  # anyone relays; the tokens go to the trader
        assert payout.paid == 25 * DOLLAR and payout.trader_balance_after - payout.trader_balance_before == 25 * DOLLAR
        assert claim(w3, exchange, token, proof, Sender(funder)).paid == 0
        assert time.monotonic() - started < BUDGET_S
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        wait_or_kill(procs)
        anvil.stop()
        failed = [i for i, proc in enumerate(procs, start=1) if proc.returncode not in (0, -signal.SIGKILL)]
        if failed:
            logs = "\n".join(f"op{i} exited {procs[i - 1].returncode}:\n" + (files.root / f"op{i}.log").read_text()[-3000:]
                             for i in failed)
            pytest.fail(f"an operator process exited with an error:\n{logs}")
