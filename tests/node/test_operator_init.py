"""Issue 16: a cluster from zero without Python — `ddx operator init` writes every operator's folder, the config
refuses to start until `ddx operator set-deployment` names the deployed exchange, `ddx operator check` passes on
each, and the three nodes started from those folders sequence a request with a receipt from a key the deployment
knows."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from ddx_offchain.client import DdxClient, Trader
from ddx_offchain.daemon.provision import genesis_from_spec, plan_cluster
from ddx_offchain.deployment.deploy import CollateralSpec, DeployConfig, deploy_and_record
from ddx_offchain.deployment.embedded import Web3Deployer, embedded_web3
from ddx_offchain.errors import ConfigError
from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.eip712 import Domain

pytestmark = pytest.mark.slow
DDX = Path(sys.executable).parent / "ddx"
TOKEN = "0x" + "11" * 20
SPEC = f"""
tokens = ["{TOKEN}"]
[[markets]]
market = "ETHP"
token = "{TOKEN}"
initial_margin_bps = 2000
"""


def _free_run(count: int) -> int:
    """A base port with `count` consecutive free ports on 0.0.0.0."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("0.0.0.0", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no run of free ports")


def test_genesis_spec_defaults_and_refusals():
    genesis = genesis_from_spec({"markets": [{"market": "ETHP", "token": TOKEN, "tick": 20_000}]})
    (market,) = genesis["markets"]
    assert genesis["tokens"] == [TOKEN] and market["tick"] == 20_000 and market["maintenance_margin_bps"] == 500
    for bad in ({}, {"markets": [{"market": "ETHP"}]}, {"markets": [{"market": "ETHP", "token": TOKEN, "tik": 5}]},
                {"markets": [{"market": "ETHP", "token": "0x12"}]}):
        with pytest.raises(ConfigError):
            genesis_from_spec(bad)
    plans = plan_cluster(["a.example.org", "b.example.org", "a.example.org"])
    assert [(p.host, p.raft_port, p.api_port) for p in plans] == [("a.example.org", 9001, 8001), ("b.example.org", 9001, 8001),
                                                                  ("a.example.org", 9002, 8002)]
    with pytest.raises(ConfigError):
        plan_cluster(["not a host"])


def test_a_cluster_from_zero_with_the_cli(tmp_path):
    env = os.environ | {"DDX_KEYSTORE_PASSWORD": "correct horse battery staple"}
    (tmp_path / "spec.toml").write_text(SPEC)
    raft, api = _free_run(3), _free_run(3)
    out = tmp_path / "cluster"
    run = lambda *args: subprocess.run([str(DDX), *args], env=env, capture_output=True, text=True, timeout=120)  # noqa: E731
    done = run("operator", "init", "--out", str(out), "--hosts", "127.0.0.1,127.0.0.1,127.0.0.1", "--scheme", "http",
               "--raft-port", str(raft), "--api-port", str(api), "--genesis-spec", str(tmp_path / "spec.toml"))
    assert done.returncode == 0, done.stdout + done.stderr
    addresses = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("operator ")]
    assert len(addresses) == 3 and "set-deployment" in done.stdout
    for i in (1, 2, 3):
        folder = out / f"op{i}"
        assert stat.S_IMODE((folder / "tls.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((folder / "keystore.json").stat().st_mode) == 0o600
        assert json.loads((folder / "keystore.json").read_text())["crypto"]["kdfparams"]["n"] == 65_536
        assert json.loads((folder / "genesis.json").read_text())["markets"][0]["initial_margin_bps"] == 2000
    again = run("operator", "init", "--out", str(out), "--hosts", "127.0.0.1", "--genesis-spec", str(tmp_path / "spec.toml"))
    assert again.returncode == 2 and "not empty" in again.stderr  # never overwrites keys

    refused = run("operator", "check", "--config", str(out / "op1" / "node.toml"))
    assert refused.returncode != 0 and "set-deployment" in refused.stdout + refused.stderr

    # the exchange, deployed for exactly these operators (here on the embedded chain; no chain side is configured)
    members = tuple(sorted(addresses, key=lambda a: int(a, 16)))
    config = DeployConfig(operators=members, threshold=om.smallest_supermajority(3),
                          collateral=(CollateralSpec(token=None, capacity=10**15, period=86400),))
    _, written = deploy_and_record(Web3Deployer(embedded_web3(), network="embedded"), config, local=True,
                                   root=tmp_path / "deployments", log=lambda _: None)
    done = run("operator", "set-deployment", "--manifest", str(written.path), str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    for i in (1, 2, 3):
        checked = run("operator", "check", "--config", str(out / f"op{i}" / "node.toml"))
        assert checked.returncode == 0, checked.stdout + checked.stderr

    nodes = [subprocess.Popen([str(DDX), "node", "--config", str(out / f"op{i}" / "node.toml")], env=env,
                              stdout=open(tmp_path / f"op{i}.log", "w"), stderr=subprocess.STDOUT) for i in (1, 2, 3)]
    try:
        manifest = json.loads(written.path.read_text())
        domain = Domain.of(manifest["chain_id"], manifest["exchange"])
        urls = [f"http://127.0.0.1:{api + k}" for k in range(3)]

        async def scenario():
            deadline = time.monotonic() + 60
            async with aiohttp.ClientSession() as http:
                while True:
                    try:
                        async with http.get(f"{urls[0]}/v1/status") as resp:
                            if (await resp.json())["raft"]["leader"] is not None:
                                break
                    except (aiohttp.ClientError, KeyError, ValueError):
                        pass
                    assert time.monotonic() < deadline, (tmp_path / "op1.log").read_text()[-2000:]
                    await asyncio.sleep(0.2)
            operators = {bytes.fromhex(a[2:]) for a in addresses}
            async with DdxClient(urls, domain, operators) as client:
                receipt = await client.submit(Trader(b"\x07" * 32, domain).create_strategy("alt"))
            assert receipt.request_index >= 1 and receipt.operator in operators

        asyncio.run(scenario())
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(timeout=30)
