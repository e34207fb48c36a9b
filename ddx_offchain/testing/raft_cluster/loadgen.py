"""A load generator that runs inside a server process, next to the RaftNode: how the operator node's API calls
`RaftNode.submit`, without a client protocol in between. Used by `benchmarks/raft.py` (PySyncObj, which has no
client protocol, is driven the same way, from inside its leader process).
"""

from __future__ import annotations

import asyncio
import time

from ddx_offchain.raft.runtime import RaftNode


async def closed_loop(node: RaftNode, payload: bytes, seconds: float, window: int) -> dict:
    """Keep `window` proposals outstanding for `seconds`; committed proposals per second."""
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    state = {"committed": 0, "failed": 0, "outstanding": 0}
    stop_at = time.perf_counter() + seconds

    def send() -> None:
        state["outstanding"] += 1
        node.submit(payload).add_done_callback(done)

    def done(future: asyncio.Future) -> None:
        state["outstanding"] -= 1
        if future.exception() is None:
            state["committed"] += 1
        else:
            state["failed"] += 1
        if time.perf_counter() < stop_at:
            send()
        elif state["outstanding"] == 0 and not finished.done():
            finished.set_result(None)

    start = time.perf_counter()
    for _ in range(window):
        send()
    await finished
    elapsed = time.perf_counter() - start
    return {"commits_per_s": state["committed"] / elapsed, "failed": state["failed"], "seconds": elapsed}


async def open_loop(node: RaftNode, payload: bytes, seconds: float, rate: float) -> dict:
    """Propose at a fixed `rate` (per second) for `seconds` and record each commit latency (submit -> applied).

    The schedule is absolute: every millisecond the generator submits whatever is due since the start, so a
    late wake-up (a busy loop) is caught up rather than silently lowering the offered load; `offered_per_s`
    reports what was actually submitted."""
    latencies: list[float] = []
    failed = [0]
    pending: list[asyncio.Future] = []
    sent = 0
    start = time.perf_counter()

    def record(future: asyncio.Future, submitted: float) -> None:
        if future.exception() is None:
            latencies.append(time.perf_counter() - submitted)
        else:
            failed[0] += 1

    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate)
        while sent < due:
            submitted = time.perf_counter()
            future = node.submit(payload)
            future.add_done_callback(lambda f, submitted=submitted: record(f, submitted))
            pending.append(future)
            sent += 1
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*pending, return_exceptions=True)
    latencies.sort()
    report = {"samples": len(latencies), "failed": failed[0], "offered_per_s": sent / elapsed}
    if latencies:
        report.update(
            p50_ms=1000 * latencies[len(latencies) // 2],
            p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            max_ms=1000 * latencies[-1],
        )
    return report
