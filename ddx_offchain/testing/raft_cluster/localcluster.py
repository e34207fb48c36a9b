"""A cluster of Raft server processes on loopback, for tests, benchmarks and local experiments.

Each node is a separate OS process (`python -m ddx_offchain.testing.raft_cluster.server`) with its own data directory, TLS
identity (generated here) and config file; ports are picked free on 127.0.0.1 and kept across restarts.
The harness can SIGKILL, SIGSTOP/SIGCONT, terminate and restart nodes, and read any stopped node's durable
log offline.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ddx_offchain.raft.certs import generate_operator_certificate
from ddx_offchain.raft.fsm import Envelope, decode_envelope
from ddx_offchain.raft.logstore import DiskStorage
from ddx_offchain.raft.messages import EntryType
from ddx_offchain.testing.raft_cluster.control import ControlClient

REPO_ROOT = Path(__file__).resolve().parents[2]


def _toml_value(value: int | float | str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free 127.0.0.1 port *below* the kernel's ephemeral range.

    A port the kernel hands out with bind(0) comes from the same range as the local ports of outgoing
    connections, so while a killed node is down, any new connection on the machine (its peers' reconnect
    attempts included) may take its port and the restart fails. Ports below the range are only ever taken on
    purpose."""
    low = min(_ephemeral_range()[0], 32768)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # everything below the range is busy: fall back to the kernel's choice
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(slots=True)
class LocalNode:
    node_id: int
    directory: Path
    peer_port: int
    control_port: int
    process: subprocess.Popen | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "node.toml"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalCluster:
    def __init__(self, base: Path, size: int, knobs: dict[str, int | float | str | bool] | None = None, log_level: str = "WARNING") -> None:
        self.base = Path(base)
        self.log_level = log_level
        self.nodes: dict[int, LocalNode] = {}
        ids = list(range(1, size + 1))
        for node_id in ids:
            directory = self.base / f"node{node_id}"
            directory.mkdir(parents=True, exist_ok=True)
            certificate = generate_operator_certificate(f"ddx-operator-{node_id}")
            (directory / "op.crt").write_bytes(certificate.cert_pem)
            key_path = directory / "op.key"
            key_path.touch(mode=0o600)
            key_path.write_bytes(certificate.key_pem)
            self.nodes[node_id] = LocalNode(node_id, directory, free_port(), free_port())
        knob_lines = "".join(f"{key} = {_toml_value(value)}\n" for key, value in (knobs or {}).items())
        for node in self.nodes.values():
            operators = "".join(
                f'\n[[operators]]\nid = {other.node_id}\naddress = "127.0.0.1:{other.peer_port}"\n'
                f'cert = "{other.directory / "op.crt"}"\n'
                for other in self.nodes.values()
            )
            node.config_path.write_text(
                f"node_id = {node.node_id}\n"
                f'data_dir = "data"\n'
                f'listen = "127.0.0.1:{node.peer_port}"\n'
                f'control = "127.0.0.1:{node.control_port}"\n'
                f'cert = "op.crt"\nkey = "op.key"\n' + knob_lines + operators
            )

    # --- processes ------------------------------------------------------------------------------------------
    def start(self, node_id: int, timeout: float = 20.0) -> None:
        node = self.nodes[node_id]
        assert not node.alive(), f"node {node_id} already running"
        log_file = open(node.directory / "node.log", "ab")
        environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        node.process = subprocess.Popen(
            # --exit-with-parent: a killed test run or benchmark never leaves server processes behind.
            [sys.executable, "-m", "ddx_offchain.testing.raft_cluster.server", "--config", str(node.config_path),
             "--log-level", self.log_level, "--exit-with-parent"],
            stdout=subprocess.PIPE, stderr=log_file, env=environment, cwd=REPO_ROOT,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        assert node.process.stdout is not None
        line = node.process.stdout.readline()
        if not line.startswith(b"READY"):
            node.process.kill()
            node.process.wait()
            tail = (node.directory / "node.log").read_text()[-3000:]
            raise RuntimeError(f"node {node_id} did not start (got {line!r}):\n{tail}")
        assert time.monotonic() <= deadline + 60

    def start_all(self) -> None:
        try:
            for node_id in self.nodes:
                self.start(node_id)
        except BaseException:
            self.close()  # never leave the nodes that did start running behind a failed start
            raise

    def kill(self, node_id: int) -> None:
        """SIGKILL: no shutdown path runs; only what was fsync'd survives."""
        node = self.nodes[node_id]
        if node.alive():
            node.process.send_signal(signal.SIGCONT)  # a stopped process must still die
            node.process.kill()
        if node.process is not None:
            node.process.wait()

    def pause(self, node_id: int) -> None:
        self.nodes[node_id].process.send_signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.nodes[node_id].process.send_signal(signal.SIGCONT)

    def terminate(self, node_id: int, timeout: float = 15.0) -> int:
        """SIGTERM: clean shutdown (hard state flushed). Returns the exit code."""
        node = self.nodes[node_id]
        if not node.alive():
            return node.process.returncode if node.process else 0
        node.process.send_signal(signal.SIGCONT)
        node.process.terminate()
        try:
            return node.process.wait(timeout)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
            raise RuntimeError(f"node {node_id} did not stop on SIGTERM") from None

    def restart(self, node_id: int) -> None:
        self.kill(node_id)
        self.start(node_id)

    def close(self) -> None:
        for node_id in self.nodes:
            self.kill(node_id)
        for node in self.nodes.values():
            if node.process is not None and node.process.stdout is not None:
                node.process.stdout.close()

    # --- clients --------------------------------------------------------------------------------------------
    async def client(self, node_id: int) -> ControlClient:
        return await ControlClient.connect("127.0.0.1", self.nodes[node_id].control_port)

    async def status(self, node_id: int, timeout: float = 2.0) -> dict | None:
        """The node's status, or None if it does not answer in time (dead, paused)."""
        try:
            client = await asyncio.wait_for(self.client(node_id), timeout)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            return await asyncio.wait_for(client.status(), timeout)
        except (OSError, asyncio.TimeoutError, ConnectionError):
            return None
        finally:
            await client.close()

    async def wait_for_leader(self, timeout: float = 20.0, among: list[int] | None = None) -> int:
        deadline = time.monotonic() + timeout
        candidates = among or list(self.nodes)
        while time.monotonic() < deadline:
            for node_id in candidates:
                if not self.nodes[node_id].alive():
                    continue
                status = await self.status(node_id, timeout=1.0)
                if status and status["role"] == "LEADER":
                    return node_id
            await asyncio.sleep(0.1)
        raise TimeoutError("no leader elected")

    # --- offline inspection ---------------------------------------------------------------------------------
    def committed_log(self, node_id: int) -> list[tuple[int, Envelope]]:
        """The committed NORMAL entries of a stopped node's durable log, decoded (snapshot prefix excluded)."""
        node = self.nodes[node_id]
        assert not node.alive(), "read the log of a stopped node only"
        storage = DiskStorage(node.data_dir)
        try:
            commit = storage.hard_state().commit
            first = storage.first_index()
            entries = storage.entries(first, commit + 1) if commit >= first else []
            return [
                (entry.index, decode_envelope(entry.data))
                for entry in entries
                if entry.type == EntryType.NORMAL and entry.data
            ]
        finally:
            storage.wal.close()
