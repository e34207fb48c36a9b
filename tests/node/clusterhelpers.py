"""Operators as separate OS processes (`python -m ddx_offchain.cli node --config …`) on loopback."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from ddx_offchain.daemon.cluster_files import LocalCluster, write_cluster
from ddx_offchain.deployment.genesis import example_genesis
from ddx_offchain.protocol.eip712 import Domain

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
GENESIS = example_genesis(USDC)
DOMAIN = Domain.of(31337, "0x" + "5a" * 20)


class ProcessCluster:
    def __init__(self, root: Path, n: int = 3, **overrides) -> None:
        self.files: LocalCluster = write_cluster(root, n, DOMAIN, GENESIS, **overrides)
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def urls(self) -> list[str]:
        return self.files.api_urls

    def start(self, i: int) -> None:
        log = open(self.files.root / f"op{i}.log", "ab")
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "ddx_offchain.cli", "node", "--config", str(self.files.configs[i - 1])],
            env=self.files.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(i)
        proc.send_signal(sig)
        proc.wait(20)

    def stop_all(self) -> None:
        for i in list(self.procs):
            self.kill(i, signal.SIGTERM)

    async def status(self, session: aiohttp.ClientSession, i: int) -> dict | None:
        try:
            async with session.get(f"{self.urls[i - 1]}/v1/status", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            return None

    async def wait(self, session, predicate, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = {i: await self.status(session, i) for i in self.procs}
            if all(s is not None for s in statuses.values()):
                result = predicate(statuses)
                if result:
                    return result
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {statuses}")

    async def wait_ready(self, session, timeout: float = 30.0) -> int:
        """Every running node knows the same leader and has applied up to its commit index; returns the leader."""

        def ready(statuses):
            leaders = {s["raft"]["leader"] for s in statuses.values()}
            if len(leaders) == 1 and None not in leaders and all(
                s["raft"]["appliedIndex"] >= s["raft"]["commitIndex"] for s in statuses.values()
            ) and leaders <= set(self.procs):
                return leaders.pop()
            return None

        return await self.wait(session, ready, "a leader", timeout)

    async def wait_converged(self, session, timeout: float = 30.0) -> dict:
        """All running nodes at the same request index; returns their statuses."""

        def same(statuses):
            indexes = {s["engine"]["nextRequestIndex"] for s in statuses.values()}
            history = {s["history"]["persistedRequestIndex"] for s in statuses.values()}
            if len(indexes) == 1 and history == {indexes.pop() - 1}:
                return statuses
            return None

        return await self.wait(session, same, "convergence", timeout)

    async def request_log(self, session, i: int, last: int) -> list[dict]:
        entries = []
        for first in range(1, last + 1, 1000):
            async with session.get(f"{self.urls[i - 1]}/v1/requests", params={"from": first, "to": min(last, first + 999)}) as resp:
                entries += (await resp.json())["entries"]
        return entries
