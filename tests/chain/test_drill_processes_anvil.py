"""Issue 10's drills with real processes on anvil: three `ddx node` processes and one `ddx replica` process, the
exchange deployed by `ape run deploy`. A trader deposits and forces a withdrawal through L1 (the processes take it
and a claim pays it); then every operator process is killed, the replica alone serves the escape proofs, anyone
freezes after the escape delay and the trader escapes with exactly what the last checkpoint owes it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
from anvil_node import Anvil
from test_node_processes_anvil import depositing_trader, eventually, send_as, start_operator_processes, wait_or_kill

from ddx_offchain.client.api import DdxClient
from ddx_offchain.client.claims import LeafProof, Sender, claim
from ddx_offchain.client.settlement import Settlement
from ddx_offchain.daemon.cluster_files import free_ports
from ddx_offchain.deployment.artifacts import compile_contract
from ddx_offchain.devnet.cluster import DOLLAR
from ddx_offchain.protocol import requests as pr
from ddx_offchain.protocol.eip712 import Domain

BUDGET_S = 120.0


def test_forced_withdrawal_then_every_operator_gone_and_escape_with_the_replicas_proofs(tmp_path):
    anvil = Anvil("--block-time", "1", "--chain-id", "1337")
    procs: list[subprocess.Popen] = []
    replica_proc = None
    try:
        started = time.monotonic()
        w3, members, manifest, manifest_path, files = start_operator_processes(anvil, tmp_path, procs)
        funder = w3.eth.accounts[0]
        replica_url = f"http://127.0.0.1:{free_ports(1)[0]}"
        replica_proc = subprocess.Popen(
            [sys.executable, "-m", "ddx_offchain.cli", "replica", "--manifest", str(manifest_path),
             "--genesis", str(files.root / "genesis.json"), "--source", files.api_urls[0], "--source", files.api_urls[1],
             "--rpc", anvil.url, "--data-dir", str(tmp_path / "replica"), "--listen", replica_url[7:],
             "--confirmations", "1"],
            stdout=open(tmp_path / "replica.log", "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

        exchange, token, key, address = depositing_trader(w3, manifest, b"drill processes trader", approve=100 * DOLLAR)
        # the trader's withdrawal goes through L1, as it would if the operators ignored its signed request
        request_type, fields = pr.forced_fields(pr.WithdrawIntent(bytes.fromhex(address[2:]), pr.strategy_id("main"),
                                                                  bytes.fromhex(token.address[2:]), 25 * DOLLAR, 0, 0))
        send_as(w3, key, exchange.functions.force_request(request_type, fields))
        domain = Domain.of(manifest.chain_id, manifest.exchange)
        operators = [bytes.fromhex(m[2:]) for m in members]

        async def while_operators_run():
            deadline = started + BUDGET_S
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:

                async def get(url):
                    async with http.get(url) as resp:
                        return await resp.json() if resp.status == 200 else None

                async def forced_taken_and_recorded():
                    doc = await get(f"{replica_url}/v1/proofs/withdrawal/{address}/{token.address}")
                    return doc if doc and doc["cumulative"] == str(25 * DOLLAR) else None

                doc = await eventually(forced_taken_and_recorded, "the forced withdrawal taken, recorded, audited by the replica", deadline)
                inbox = await get(f"{files.api_urls[2]}/v1/inbox")
                assert inbox["engine"] == inbox["contract"] and inbox["contract"]["forced"] == "1"
                return doc

        doc = asyncio.run(while_operators_run())
        payout = claim(w3, exchange, token, LeafProof.from_api(doc, address, token.address), Sender(funder))
        assert payout.paid == 25 * DOLLAR
        recorded = exchange.functions.latest_epoch().call()

        for proc in procs:  # every operator gone
            proc.kill()
        for proc in procs:
            proc.wait(10)
        send_as(w3, key, exchange.functions.deposit(token.address, 5 * DOLLAR))  # never credited: escape returns it
        delay = exchange.functions.escape_delay().call()
        w3.provider.make_request("evm_increaseTime", [delay + 1])
        w3.provider.make_request("evm_mine", [])

        async def escape_with_the_replica():
            async with DdxClient([replica_url], domain, operators) as reader:
                settlement = Settlement(reader, w3, exchange, compile_contract("MockERC20").abi)
                balance, withdrawal = await settlement.escape_proofs(address, token.address)
                assert balance.epoch == exchange.functions.latest_epoch().call() >= recorded
                return settlement.escape(balance, withdrawal, Sender(funder)), balance

        escaped, balance = asyncio.run(escape_with_the_replica())
        assert exchange.functions.frozen().call()
        # what the last checkpoint owes: its BALANCE amount, plus the deposit it never credited (the withdrawable was
        # claimed already)
        assert escaped.paid == balance.amount + 5 * DOLLAR == 40 * DOLLAR
        assert token.functions.balanceOf(address).call() == 100 * DOLLAR  # everything back
        assert token.functions.balanceOf(exchange.address).call() == 0
        assert time.monotonic() - started < BUDGET_S
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        if replica_proc is not None:
            replica_proc.send_signal(signal.SIGTERM)
            wait_or_kill([replica_proc])
            if replica_proc.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM):
                pytest.fail("the replica process exited with an error:\n" + (tmp_path / "replica.log").read_text()[-3000:])
        wait_or_kill(procs)
        anvil.stop()
