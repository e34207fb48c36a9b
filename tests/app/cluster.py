"""Operators as separate `ddx node` processes (4, threshold 3) on anvil, each reaching the chain through an RPC URL
the test chooses: what the browser tests of the operator view and the escape hatch run against (the app is served by
every node). Also the RPC middlemen those tests use to cause failures: a TCP relay that can be cut, and a JSON-RPC
proxy that can hide deposit logs from one operator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from apphelpers import REPO
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from ddx_offchain.daemon.cluster_files import write_cluster
from ddx_offchain.daemon.keystore import write_keystore
from ddx_offchain.deployment.deploy import CollateralSpec, DeployConfig, deploy_and_record
from ddx_offchain.deployment.embedded import Web3Deployer
from ddx_offchain.deployment.genesis import example_genesis
from ddx_offchain.devnet.anvil import AnvilProcess
from ddx_offchain.protocol.eip712 import Domain

OPERATORS = 4
DEPOSIT_TOPIC = "0x" + keccak(text="Deposit(uint256,address,bytes32,address,uint256,address)").hex()


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


class DepositHidingRpc:
    """A JSON-RPC proxy in front of one operator's chain: it forwards every call, but once `hide_deposits` is set
    it removes the exchange's Deposit logs from eth_getLogs answers — an RPC provider that loses logs. The leader's
    chain watcher then sees fewer deposits than the contract's inbox head says (its deposit alarm); a follower's
    verifier sees the leader sequence a deposit its own chain does not show (a verification refusal)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.hide_deposits = False
        self.hidden = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = urllib.request.Request(proxy.upstream, data=body, headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=30) as resp:
                        answer = resp.read()
                except (OSError, urllib.error.URLError):
                    self.send_response(502)
                    self.end_headers()
                    return
                if proxy.hide_deposits:
                    answer = proxy._filter(json.loads(body), json.loads(answer))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _filter(self, request, answer) -> bytes:
        pairs = zip(request, answer) if isinstance(request, list) else [(request, answer)]
        for req, ans in pairs:
            if req.get("method") == "eth_getLogs" and isinstance(ans.get("result"), list):
                kept = [log for log in ans["result"] if not log["topics"] or log["topics"][0].lower() != DEPOSIT_TOPIC]
                self.hidden += len(ans["result"]) - len(kept)
                ans["result"] = kept
        return json.dumps(answer).encode()

    def close(self) -> None:
        self.server.shutdown()


def control_server(routes: dict[str, Callable[[], object]]) -> ThreadingHTTPServer:
    """GET /<route>: what a browser test calls to change the operators' world (cut the RPC, hide deposits, …)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            action = routes.get(self.path)
            if action is not None:
                action()
            self.send_response(200 if action is not None else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ready(api: str) -> bool:
    try:
        with urllib.request.urlopen(api + "/readyz", timeout=2) as resp:
            return json.loads(resp.read())["ready"]
    except OSError:
        return False


@dataclass
class Cluster:
    anvil: AnvilProcess
    w3: Web3
    manifest: object
    apis: list[str]
    procs: list[subprocess.Popen]
    logs: Path


@contextmanager
def operator_cluster(tmp_path: Path, rpc_urls: Callable[[str], list[str]], **deploy: object) -> Iterator[Cluster]:
    """Anvil (a block a second), the contracts (a mock collateral token; `deploy`: DeployConfig overrides), and four
    `ddx node` processes of this checkout, operator i reaching the chain through `rpc_urls(anvil_url)[i]`; ready
    when every node says so. Stops them all on exit."""
    anvil = AnvilProcess("--block-time", "1", "--mixed-mining", log_path=tmp_path / "anvil.log")
    procs: list[subprocess.Popen] = []
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        keys = sorted((os.urandom(32) for _ in range(OPERATORS)), key=lambda k: int(Account.from_key(k).address, 16))
        members = tuple(Account.from_key(k).address for k in keys)
        config = DeployConfig(operators=members, threshold=3,
                              collateral=(CollateralSpec(token=None, capacity=10**15, period=86400),), **deploy)
        manifest, _ = deploy_and_record(Web3Deployer(w3, network="rpc"), config, local=True,
                                        root=tmp_path / "deployments", log=lambda _: None)
        manifest_path = next((tmp_path / "deployments").glob("*/latest.json"))
        for member in members:  # relayers pay gas
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": member, "value": 10**20}))
        files = write_cluster(tmp_path / "ops", OPERATORS, Domain.of(manifest.chain_id, manifest.exchange),
                              example_genesis(manifest.mock_token))
        rpcs = rpc_urls(anvil.url)
        for i, (path, key, rpc) in enumerate(zip(files.configs, keys, rpcs, strict=True), start=1):
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
        while not all(ready(api) for api in apis):
            assert time.monotonic() < deadline, "the operators did not become ready in 120 s"
            assert all(p.poll() is None for p in procs), "an operator exited: " + (files.root / "op1.log").read_text()[-3000:]
            time.sleep(0.5)
        yield Cluster(anvil, w3, manifest, apis, procs, files.root)
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
        anvil.stop()
