"""The two failure kinds look different on screen (tests/app/browser/failures.test.mjs): operators as separate
`ddx node` processes (4, threshold 3) on anvil behind a relay that can cut their JSON-RPC. With the RPC down the
operator view shows the settlement clock degraded while sequencing goes on; with the leader killed it shows the
cluster clock degraded, a new leader, and checkpoints still recorded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from apphelpers import REPO, node_env
from eth_account import Account
from test_browser import system_chromium
from web3 import Web3

from ddx_offchain.daemon.cluster_files import write_cluster
from ddx_offchain.daemon.keystore import write_keystore
from ddx_offchain.deployment.deploy import CollateralSpec, DeployConfig, deploy_and_record
from ddx_offchain.deployment.embedded import Web3Deployer
from ddx_offchain.deployment.genesis import example_genesis
from ddx_offchain.devnet.anvil import AnvilProcess, find_anvil
from ddx_offchain.protocol.eip712 import Domain

OPERATORS = 4


class RpcSwitch:
    """A TCP relay in front of anvil that can be cut (every connection closed, new ones refused) and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            with self.lock:
                self.open |= {conn, upstream}
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def control_server(switch: RpcSwitch) -> ThreadingHTTPServer:
    """GET /rpc/down and /rpc/up: what the browser test calls to cut and restore the operators' RPC."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            {"/rpc/down": switch.cut, "/rpc/up": switch.restore}.get(self.path, lambda: None)()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _ready(api: str) -> bool:
    try:
        with urllib.request.urlopen(api + "/readyz", timeout=2) as resp:
            return json.loads(resp.read())["ready"]
    except OSError:
        return False


def test_the_operator_view_tells_the_two_failure_kinds_apart(tmp_path, app_built):
    chromium = system_chromium()
    assert chromium is not None, "no chromium: `apt-get install -y chromium` (make test does it as root)"
    assert find_anvil() is not None, "anvil is missing: run `make install` (npm ci installs anvil)"
    anvil = AnvilProcess("--block-time", "1", "--mixed-mining", log_path=tmp_path / "anvil.log")
    host, port = anvil.url.removeprefix("http://").split(":")
    switch = RpcSwitch((host, int(port)))
    control = control_server(switch)
    procs: list[subprocess.Popen] = []
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        keys = sorted((os.urandom(32) for _ in range(OPERATORS)), key=lambda k: int(Account.from_key(k).address, 16))
        members = tuple(Account.from_key(k).address for k in keys)
        config = DeployConfig(operators=members, threshold=3,
                              collateral=(CollateralSpec(token=None, capacity=10**15, period=86400),))
        manifest, _ = deploy_and_record(Web3Deployer(w3, network="rpc"), config, local=True,
                                        root=tmp_path / "deployments", log=lambda _: None)
        manifest_path = next((tmp_path / "deployments").glob("*/latest.json"))
        for member in members:  # relayers pay gas
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": member, "value": 10**20}))
        files = write_cluster(tmp_path / "ops", OPERATORS, Domain.of(manifest.chain_id, manifest.exchange),
                              example_genesis(manifest.mock_token))
        rpc = f"http://127.0.0.1:{switch.port}"
        for i, (path, key) in enumerate(zip(files.configs, keys), start=1):
            write_keystore(files.root / f"op{i}.keystore.json", key, files.password, iterations=2048)
            text = path.read_text()
            assert text.count("[chain]\n") == 1
            path.write_text(text.replace("[chain]\n", f'[chain]\nrpc = "{rpc}"\nmanifest = "{manifest_path}"\n'
                                                      "epoch_interval_ms = 1500\n"))
        env = files.env() | {"PYTHONPATH": str(REPO)}  # this checkout's code
        for i, path in enumerate(files.configs, start=1):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ddx_offchain.cli", "node", "--config", str(path)], env=env,
                stdout=open(files.root / f"op{i}.log", "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        apis = list(files.api_urls)
        deadline = time.monotonic() + 120
        while not all(_ready(api) for api in apis):
            assert time.monotonic() < deadline, "the operators did not become ready in 120 s"
            assert all(p.poll() is None for p in procs), "an operator exited: " + (files.root / "op1.log").read_text()[-3000:]
            time.sleep(0.5)
        info = tmp_path / "cluster.json"
        info.write_text(json.dumps({
            "apis": apis, "pids": {api: p.pid for api, p in zip(apis, procs)},
            "control": f"http://127.0.0.1:{control.server_address[1]}",
        }))
        done = subprocess.run(
            ["node", "--test", "--test-reporter=spec", str(REPO / "tests/app/browser/failures.test.mjs")],
            cwd=REPO, capture_output=True, text=True, timeout=600,
            env=node_env(DDX_CLUSTER_INFO=str(info), CHROMIUM=chromium, DDX_SCREENSHOTS=str(tmp_path / "screenshots")),
        )
        assert done.returncode == 0, done.stdout[-10000:] + done.stderr[-4000:]
        assert "fail 0" in done.stdout
        assert len(list((tmp_path / "screenshots").glob("*.png"))) >= 3
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        control.shutdown()
        switch.close()
        anvil.stop()
