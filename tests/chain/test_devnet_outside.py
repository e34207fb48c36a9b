"""`ddx devnet` used from outside, as a trader with their own wallet and script would: a JSON-RPC endpoint (anvil),
chain id 31337, funded dev accounts, a faucet, prices that move, and the documented web3.py script
(docs/examples/trader_web3.py) going deposit -> trade -> withdraw -> recorded checkpoint -> claim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from web3 import Web3

REPO = Path(__file__).resolve().parents[2]
DDX = Path(sys.executable).parent / "ddx"


def _wait_for_file(path: Path, process: subprocess.Popen, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass  # being written
        assert process.poll() is None, f"ddx devnet exited with {process.returncode}"
        time.sleep(0.2)
    raise AssertionError(f"{path} did not appear in {timeout_s} s")


def test_a_traders_own_script_against_the_devnet(tmp_path):
    info_path = tmp_path / "devnet.json"
    env = os.environ | {"DDX_DEVNET_INFO": str(info_path)}
    stdout, stderr = open(tmp_path / "devnet.out", "w"), open(tmp_path / "devnet.err", "w")
    devnet = subprocess.Popen(
        [str(DDX), "devnet", "--rpc-port", "0", "--epoch-seconds", "2", "--data-dir", str(tmp_path / "net"),
         "--fund", "0x" + "ab" * 20],
        env=env, stdout=stdout, stderr=stderr, cwd=tmp_path,
    )
    try:
        info = _wait_for_file(info_path, devnet, 180)
        assert info["chainId"] == 31337 and info["rpc"].startswith("http://127.0.0.1:")
        assert len(info["devAccounts"]) == 3 and Path(info["genesis"]).exists() and Path(info["manifest"]).exists()
        assert len(info["apis"]) == 4  # 4 operators, threshold 3: one may fail
        w3 = Web3(Web3.HTTPProvider(info["rpc"]))
        assert w3.eth.chain_id == 31337
        funded = Web3.to_checksum_address("0x" + "ab" * 20)
        assert w3.eth.get_balance(funded) > 0  # --fund

        script = subprocess.run([sys.executable, str(REPO / "docs" / "examples" / "trader_web3.py")], env=env,
                                capture_output=True, text=True, timeout=400)
        assert script.returncode == 0, script.stdout + script.stderr
        for line in ("deposited", "index price moved", "filled", "withdrawal receipted", "recorded on-chain", "claimed 1,000"):
            assert line in script.stdout, script.stdout

        # the faucet and the price control, as separate commands against the running devnet
        other = "0x" + "cd" * 20
        done = subprocess.run([str(DDX), "devnet", "fund", other, "--amount", "5"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert w3.eth.get_balance(Web3.to_checksum_address(other)) == 10 * 10**18
        done = subprocess.run([str(DDX), "devnet", "price", "ETHP", "2345.5"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        refused = subprocess.run([str(DDX), "devnet", "price", "ETHP", "-1"], env=env, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode == 2
    finally:
        devnet.send_signal(signal.SIGINT)
        try:
            devnet.wait(timeout=60)
        except subprocess.TimeoutExpired:
            devnet.kill()
            devnet.wait()
        stdout.close()
        stderr.close()
    out = (tmp_path / "devnet.out").read_text()
    assert "JSON-RPC http://127.0.0.1:" in out and "DEV ONLY" in out and "mock Chainlink aggregator" in out
    assert "INFO ddx." in (tmp_path / "devnet.err").read_text()  # operators log to stderr
