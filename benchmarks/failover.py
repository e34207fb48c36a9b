"""Failover benchmark (issue 16): 3 operators as processes on this machine, traders sending signed requests to
the followers (which forward them to the leader) at a steady rate; the leader is SIGKILLed mid-run. Reports the
time to receipt of every request sent from 1 s before the kill to 3 s after it — p50, p99, max — how many ended
without a receipt (`outcome_unknown` and the like), and the same figures for the quiet part of the run.

    python benchmarks/failover.py --json           # the last line is one JSON object

Before forwarded proposals were re-forwarded on a leader change, requests in flight at the kill waited the whole
proposal timeout (10 s) and ended `outcome_unknown`; now they are bounded by the election (~ election_ticks x
tick_ms, 0.5 s here, plus detection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from ddx_offchain.client import Trader  # noqa: E402
from ddx_offchain.daemon.cluster_files import write_cluster  # noqa: E402
from ddx_offchain.deployment.genesis import example_genesis  # noqa: E402
from ddx_offchain.protocol.eip712 import Domain  # noqa: E402

GENESIS = example_genesis("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48")
DOMAIN = Domain.of(31337, "0x" + "5a" * 20)


async def leader_index(session, urls) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for i, url in enumerate(urls):
            try:
                async with session.get(f"{url}/v1/status") as resp:
                    if (await resp.json())["raft"]["isLeader"]:
                        return i
            except (aiohttp.ClientError, ConnectionError, KeyError):
                pass
        await asyncio.sleep(0.1)
    raise RuntimeError("no leader")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


async def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="ddx-failover-") as tmp:
        cluster = write_cluster(Path(tmp), 3, DOMAIN, GENESIS, raft_overrides={"tick_ms": 50})
        procs = [subprocess.Popen([sys.executable, "-m", "ddx_offchain.cli", "node", "--config", str(c)], env=cluster.env(),
                                  stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / f"op{i}.log", "wb"))
                 for i, c in enumerate(cluster.configs, start=1)]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                leader = await leader_index(session, cluster.api_urls)
                followers = [u for i, u in enumerate(cluster.api_urls) if i != leader]
                traders = [Trader(os.urandom(32), DOMAIN) for _ in range(32)]
                samples: list[tuple[float, float | None, str]] = []  # (sent at, seconds to receipt or None, outcome)
                start = time.monotonic()
                kill_at = start + args.seconds / 2
                killed = asyncio.Event()

                async def one(k: int) -> None:
                    trader = traders[k % len(traders)]
                    body = trader.create_strategy(f"f{k}").to_json()
                    sent = time.monotonic()
                    try:
                        async with session.post(f"{followers[k % 2]}/v1/requests", json=body) as resp:
                            doc = await resp.json()
                        ok = resp.status == 200
                        samples.append((sent - kill_at, time.monotonic() - sent if ok else None, "receipt" if ok else doc.get("error")))
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        samples.append((sent - kill_at, None, type(exc).__name__))

                tasks = []
                k = 0
                while time.monotonic() - start < args.seconds:
                    if not killed.is_set() and time.monotonic() >= kill_at:
                        procs[leader].send_signal(signal.SIGKILL)
                        killed.set()
                    tasks.append(asyncio.ensure_future(one(k)))
                    k += 1
                    await asyncio.sleep(1 / args.rate)
                await asyncio.gather(*tasks)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                p.wait(timeout=30)
    around = [s for s in samples if -1.0 <= s[0] <= 3.0]
    quiet = [s for s in samples if s[0] < -1.0]
    times = lambda rows: [t for _, t, _ in rows if t is not None]  # noqa: E731
    return {
        "requests": len(samples),
        "rate_per_s": args.rate,
        "around_kill": len(around),
        "around_kill_p50_ms": percentile(times(around), 0.5),
        "around_kill_p99_ms": percentile(times(around), 0.99),
        "around_kill_max_ms": percentile(times(around), 1.0),
        "around_kill_without_receipt": sum(1 for _, t, _ in around if t is None),
        "quiet_p50_ms": percentile(times(quiet), 0.5),
        "quiet_p99_ms": percentile(times(quiet), 0.99),
        "without_receipt": sorted({o for _, t, o in samples if t is None}),
        "proposal_timeout_ms": 10_000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, split over the two followers")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if not args.json:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
