"""End-to-end benchmark (issue 6): 3 operators as processes on this machine, many concurrent traders sending
signed orders over HTTP; receipts per second at saturation, p50/p99 time-to-receipt at half that load, and the
signature-verification bound measured in the same run; then the same saturation over WebSocket request channels
(`ws_receipts_per_s`); then the batched run: the same traders and load generator, each request a Batch of
`--batch-size` place actions (one signature, one Raft entry, one receipt for the lot; docs/engine.md §3.1), at
saturation (`batched_receipts_per_s`, `batched_actions_per_s`, and their ratio to the single requests' receipts/s of
the same run) and at half that load (`batched_p50_ms`, `batched_p99_ms`), with CPU per action. `latency_curve`: the
single requests' time to receipt (p50/p99) at 10 %, 25 %, 50 % and 75 % of their saturation rate.

    python benchmarks/e2e.py --json                # the last line is one JSON object
    python benchmarks/e2e.py --seconds 3 --traders 64 --batch-size 50
    python benchmarks/e2e.py --profile-leader /tmp/leader.txt --profile-gil   # py-spy during the batched saturation

The bound: every operator recovers the signer of every request once (the leader at admission, every node when it
applies the entry; the leader skips its second recovery of bytes it admitted itself), so with `cores` cores shared
by the 3 operators the cluster cannot exceed cores / (3 × t_recover) requests per second, whatever else it does.
Requests are signed before the clock starts (the load generator shares the cores, and signing is the trader's
cost, not the exchange's). Orders go to one market with no deposits, so the engine rejects them for margin: the
path measured is the sequencing one (admission, Raft with fsync, apply, receipt), which is what a receipt waits on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from ddx_offchain.client import Trader, place_action  # noqa: E402
from ddx_offchain.daemon.cluster_files import write_cluster  # noqa: E402
from ddx_offchain.deployment.genesis import example_genesis  # noqa: E402
from ddx_offchain.protocol.eip712 import Domain, recover_signer  # noqa: E402

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
GENESIS = example_genesis(USDC)
DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
OPERATORS = 3


def measure_recovery(samples: int = 3000) -> float:
    """Seconds per signer recovery (coincurve), over distinct signed requests."""
    trader = Trader(os.urandom(32), DOMAIN)
    signed = [trader.place_order("ETHP", 0, 1_000, 20_000_000) for _ in range(samples)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for s in signed:
            recover_signer(s.request_hash, s.signature)
        best = min(best, (time.perf_counter() - start) / samples)
    return best


def presign(traders: int, per_trader: int) -> list[list[bytes]]:
    rng = random.Random(7)
    out = []
    for _ in range(traders):
        t = Trader(os.urandom(32), DOMAIN)
        bodies = []
        for _ in range(per_trader):
            s = t.place_order("ETHP", rng.randrange(2), 1_000 * rng.randrange(1, 50), 10_000 * rng.randrange(1_900, 2_100))
            bodies.append(json.dumps(s.to_json()).encode())
        out.append(bodies)
    return out


def presign_batches(traders: int, per_trader: int, size: int) -> list[list[bytes]]:
    """Like presign, but each request a Batch of `size` place actions drawn the same way."""
    rng = random.Random(11)
    out = []
    for _ in range(traders):
        t = Trader(os.urandom(32), DOMAIN)
        bodies = []
        for _ in range(per_trader):
            actions = [
                place_action("ETHP", rng.randrange(2), 1_000 * rng.randrange(1, 50), 10_000 * rng.randrange(1_900, 2_100))
                for _ in range(size)
            ]
            bodies.append(json.dumps(t.batch(actions).to_json()).encode())
        out.append(bodies)
    return out


async def wait_leader(session: aiohttp.ClientSession, urls: list[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for url in urls:
            try:
                async with session.get(f"{url}/v1/status") as resp:
                    doc = await resp.json()
                if doc["raft"]["isLeader"]:
                    return url
            except (aiohttp.ClientError, ConnectionError):
                pass
        await asyncio.sleep(0.1)
    raise RuntimeError("no leader")


async def leader_fsyncs(session, url) -> int:
    return (await leader_disk(session, url))[0]


async def leader_disk(session, url) -> tuple[int, float]:
    """(fsyncs, seconds spent in log writes + fdatasync) of the node at `url` since it started."""
    async with session.get(f"{url}/v1/status") as resp:
        raft = (await resp.json())["raft"]
    return raft.get("fsyncs", 0), raft.get("fsyncSecondsTotal") or 0.0


class Connection:
    """A minimal HTTP/1.1 keep-alive client for pre-built requests: the load generator shares the cores with the
    operators, so it should spend as little CPU per request as possible (aiohttp's client costs several times more)."""

    def __init__(self, url: str) -> None:
        host_port = url.split("//", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.retries = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> float:
        """Seconds from sending to the receipt; a 503 (leadership moved mid-proposal) is retried with the same bytes,
        which is safe (a retry never executes twice) and counted in the latency."""
        start = time.perf_counter()
        while True:
            status, answer = await self._exchange(body)
            if status == 200:
                return time.perf_counter() - start
            if status != 503:
                raise RuntimeError(f"{status}: {answer[:200]!r}")
            self.retries += 1
            await asyncio.sleep(0.01)

    async def _exchange(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            b"POST /v1/requests HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (self.host.encode(), len(body)) + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(head[9:12]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


RETRIES = [0]


async def saturate(url, streams: list[list[bytes]], seconds: float, latencies: list | None = None) -> tuple[int, float]:
    """Closed loop: each trader sends its next request when the previous receipt arrives (each receipt's latency
    appended to `latencies` when given)."""
    done = 0
    stop_at = time.perf_counter() + seconds
    keep = latencies.append if latencies is not None else None

    async def trader(bodies):
        nonlocal done
        connection = Connection(url)
        try:
            for body in bodies:
                if time.perf_counter() >= stop_at:
                    return
                latency = await connection.post(body)
                if keep is not None:
                    keep(latency)
                done += 1
        finally:
            RETRIES[0] += connection.retries
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(trader(b) for b in streams))
    return done, time.perf_counter() - start


async def paced(url, bodies: list[bytes], rate: float, connections: int = 64) -> list[float]:
    """Open loop at `rate` requests per second over `connections` keep-alive connections: request k is due at
    start + k / rate and its latency counts from then, so it is not hidden by waiting for the previous receipt
    (a request waits for a free connection only if all are busy, and that wait is counted). Each connection's
    worker takes the next request off the shared schedule: no task or queue operation per request."""
    schedule = iter(enumerate(bodies))
    latencies: list[float] = []
    start = time.perf_counter() + 0.01

    async def worker() -> None:
        connection = Connection(url)
        try:
            for k, body in schedule:
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await connection.post(body)
                latencies.append(time.perf_counter() - due)
        finally:
            RETRIES[0] += connection.retries
            connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies


async def saturate_ws(session, url, streams: list[list[bytes]], seconds: float, channels: int = 16) -> tuple[int, float]:
    """The same closed loop over WebSocket request channels (/v1/ws/requests), traders sharing `channels` sockets."""
    done = 0
    stop_at = time.perf_counter() + seconds
    sockets = [await session.ws_connect(f"{url}/v1/ws/requests") for _ in range(channels)]
    waiters: dict[str, asyncio.Future] = {}

    async def read(ws):
        async for msg in ws:
            doc = json.loads(msg.data)
            waiters.pop(doc["id"]).set_result(doc)

    readers = [asyncio.create_task(read(ws)) for ws in sockets]

    async def trader(k, bodies):
        nonlocal done
        ws = sockets[k % channels]
        for n, body in enumerate(bodies):
            if time.perf_counter() >= stop_at:
                return
            tag = f"{k}.{n}"
            while True:
                future = asyncio.get_running_loop().create_future()
                waiters[tag] = future
                await ws.send_str('{"id": "%s", "request": %s}' % (tag, body.decode()))
                doc = await future
                if "receipt" in doc:
                    break
                if doc["error"] not in ("outcome_unknown", "not_sequenced", "no_leader", "overloaded"):
                    raise RuntimeError(doc)
                RETRIES[0] += 1
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(trader(k, b) for k, b in enumerate(streams)))
    elapsed = time.perf_counter() - start
    for ws in sockets:
        await ws.close()
    for r in readers:
        r.cancel()
    return done, elapsed


def machine_contention() -> dict:
    """How busy the machine was (this benchmark is only meaningful on an otherwise idle one)."""
    out = {"load_average_1m": round(os.getloadavg()[0], 2)}
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]  # "some avg10=… avg60=… …"
        out["cpu_pressure_some_avg10"] = float(line.split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return out


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (disk, history) included: /proc/PID/stat fields 14
    and 15. CPU time, unlike wall-clock throughput, hardly moves when other jobs share the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds spent by each operator process and by this load generator over one phase."""

    def __init__(self, procs: list[subprocess.Popen], leader_index: int) -> None:
        self.procs = procs
        self.leader_index = leader_index
        self.start = self._sample()

    def _sample(self) -> list[tuple[float, float]]:
        times = os.times()
        return [process_cpu_seconds(p.pid) for p in self.procs] + [(times.user, times.system)]

    def stop(self) -> "CpuMeter":
        """End the phase now (per_receipt_us then divides this phase's CPU, however often it is called)."""
        self.end = self._sample()
        return self

    def per_receipt_us(self, receipts: int) -> dict:
        """CPU microseconds per receipt (or per any unit counted in `receipts`, such as a batch's actions): leader,
        each follower, the load generator, and the operators' total; and the kernel's part (system time: sockets,
        fsync) of each operator's figure."""
        end = getattr(self, "end", None) or self._sample()
        per = lambda seconds: round(seconds * 1e6 / max(1, receipts), 1)  # noqa: E731
        total = [per(eu + es - su - ss) for (su, ss), (eu, es) in zip(self.start, end)]
        system = [per(es - ss) for (_, ss), (_, es) in zip(self.start, end)]
        operators = total[:-1]
        followers = [k for k in range(len(operators)) if k != self.leader_index]
        return {
            "leader": operators[self.leader_index],
            "followers": [operators[k] for k in followers],
            "operators_total": round(sum(operators), 1),
            "load_generator": total[-1],
            "system_part": {"leader": system[self.leader_index], "followers": [system[k] for k in followers]},
        }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args) -> dict:
    t_recover = measure_recovery()
    cores = os.cpu_count() or 1
    sig_bound = cores / (OPERATORS * t_recover)
    with tempfile.TemporaryDirectory(prefix="ddx-e2e-") as tmp:
        raft_overrides = {"tick_ms": 50}
        for knob in args.raft_knob:
            name, _, value = knob.partition("=")
            raft_overrides[name] = json.loads(value)
        api_overrides = {"admission_threads": args.admission_threads} if args.admission_threads else None
        cluster = write_cluster(Path(tmp), OPERATORS, DOMAIN, GENESIS, raft_overrides=raft_overrides,
                                api_overrides=api_overrides)
        procs = [
            subprocess.Popen([sys.executable, "-m", "ddx_offchain.cli", "node", "--config", str(c)], env=cluster.env(),
                             stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / f"op{i}.log", "wb"))
            for i, c in enumerate(cluster.configs, start=1)
        ]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                leader = await wait_leader(session, cluster.api_urls)
                warm = presign(8, 20)
                await saturate(leader, warm, 2.0)
                streams = presign(args.traders, args.per_trader)
                fsyncs_before, fsync_s_before = await leader_disk(session, leader)
                leader_index = cluster.api_urls.index(leader)
                meter = CpuMeter(procs, leader_index)
                done, elapsed = await saturate(leader, streams, args.seconds)
                cpu_http = meter.per_receipt_us(done)
                fsyncs_after, fsync_s_after = await leader_disk(session, leader)
                fsyncs = fsyncs_after - fsyncs_before
                fsync_ms_mean = 1000 * (fsync_s_after - fsync_s_before) / max(1, fsyncs)
                receipts_per_s = done / elapsed
                half = receipts_per_s / 2
                paced_bodies = [b for stream in presign(args.traders, max(1, int(half * args.seconds / args.traders) + 1)) for b in stream]
                fsyncs_before = await leader_fsyncs(session, leader)
                meter = CpuMeter(procs, leader_index)
                latencies = await paced(leader, paced_bodies[: int(half * args.seconds)], half)
                cpu_paced = meter.per_receipt_us(len(latencies))
                paced_fsyncs = await leader_fsyncs(session, leader) - fsyncs_before
                curve = []  # the latency curve (issue 11): time to receipt at a tenth, a quarter, half, three quarters
                for fraction in (0.50,) if args.quick else (0.10, 0.25, 0.50, 0.75):
                    if fraction == 0.50:
                        points = latencies
                    else:
                        rate = receipts_per_s * fraction
                        bodies = [b for stream in presign(args.traders, max(1, int(rate * args.seconds / args.traders) + 1))
                                  for b in stream]
                        points = await paced(leader, bodies[: int(rate * args.seconds)], rate)
                    curve.append({"load": fraction, "offered_per_s": round(receipts_per_s * fraction, 1),
                                  "p50_ms": round(percentile(points, 0.50) * 1000, 2),
                                  "p99_ms": round(percentile(points, 0.99) * 1000, 2), "samples": len(points)})
                contention = machine_contention()
                if args.quick:
                    ws_done, ws_elapsed, cpu_ws, batched = 0, 1.0, None, {}
                else:
                    ws_streams = presign(args.traders, args.per_trader)
                    meter = CpuMeter(procs, leader_index)
                    ws_done, ws_elapsed = await saturate_ws(session, leader, ws_streams, args.seconds)
                    cpu_ws = meter.per_receipt_us(ws_done)
                    contention = machine_contention()
                    batched = await batched_run(session, leader, procs, leader_index, args)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(20)
    return {
        "receipts_per_s": round(receipts_per_s, 1),
        "sig_bound_per_s": round(sig_bound, 1),
        "ratio": round(receipts_per_s / sig_bound, 3),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "half_load_per_s": round(half, 1),
        "latency_curve": curve,
        "ws_receipts_per_s": round(ws_done / ws_elapsed, 1),
        "recover_us": round(t_recover * 1e6, 1),
        "cpu_us_per_receipt": cpu_http,
        "cpu_us_per_receipt_half_load": cpu_paced,
        "cpu_us_per_receipt_ws": cpu_ws,
        "cores": cores,
        "operators": OPERATORS,
        "traders": args.traders,
        "saturation_requests": done,
        "paced_requests": len(latencies),
        "retried_503": RETRIES[0],
        "fsync": True,
        "leader_fsyncs_per_s": round(fsyncs / elapsed, 1),
        "entries_per_fsync": round(done / max(1, fsyncs), 1),
        "leader_fsync_ms_mean": round(fsync_ms_mean, 3),
        "entries_per_fsync_half_load": round(len(latencies) / max(1, paced_fsyncs), 1),
        "targets": {"ratio": 0.5, "p99_ms": 50.0},
        "machine": contention,
        "admission_threads": args.admission_threads,
        "raft_knobs": args.raft_knob,
        **batched,
        **({} if args.quick else {
            "batched_ratio_to_single": round(batched["batched_actions_per_s"] / receipts_per_s, 2),
            "batched_receipts_ratio_to_single": round(batched["batched_receipts_per_s"] / receipts_per_s, 3),
        }),
    }


async def batched_run(session, leader: str, procs: list, leader_index: int, args) -> dict:
    """The batched phases: saturation (closed loop, the same traders), then an open loop at half that rate."""
    size = args.batch_size
    streams = presign_batches(args.traders, args.batch_per_trader, size)
    follower_index = next(k for k in range(len(procs)) if k != leader_index)
    profilers = [
        subprocess.Popen(
            ["py-spy", "record", "--pid", str(procs[k].pid), "--duration", str(max(1, int(args.seconds))),
             "--rate", "250", "--nonblocking", "--threads", "--format", "raw", "--output", path,
             *(["--gil"] if args.profile_gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for k, path in ((leader_index, args.profile_leader), (follower_index, args.profile_follower)) if path
    ]
    fsyncs_before = await leader_fsyncs(session, leader)
    meter = CpuMeter(procs, leader_index)
    saturation_latencies: list[float] = []
    done, elapsed = await saturate(leader, streams, args.seconds, saturation_latencies)
    meter.stop()
    fsyncs = await leader_fsyncs(session, leader) - fsyncs_before
    for profiler in profilers:
        profiler.wait(30)
    receipts_per_s = done / elapsed
    half = receipts_per_s / 2
    count = int(half * args.seconds)
    per_trader = max(1, count // args.traders + 1)
    paced_bodies = [b for stream in presign_batches(args.traders, per_trader, size) for b in stream][:count]
    paced_meter = CpuMeter(procs, leader_index)
    latencies = await paced(leader, paced_bodies, half)
    paced_meter.stop()
    return {
        "batch_size": size,
        "batched_receipts_per_s": round(receipts_per_s, 1),
        "batched_actions_per_s": round(receipts_per_s * size, 1),
        "batched_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "batched_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "batched_half_load_per_s": round(half, 1),
        "batched_p50_ms_saturation": round(percentile(saturation_latencies, 0.50) * 1000, 2),
        "batched_p99_ms_saturation": round(percentile(saturation_latencies, 0.99) * 1000, 2),
        "cpu_us_per_action_batched": meter.per_receipt_us(done * size),
        "cpu_us_per_batched_receipt": meter.per_receipt_us(done),
        "cpu_us_per_action_batched_half_load": paced_meter.per_receipt_us(len(latencies) * size),
        "batched_saturation_requests": done,
        "batched_streams_exhausted": done >= args.traders * args.batch_per_trader,
        "batched_paced_requests": len(latencies),
        "batched_entries_per_fsync": round(done / max(1, fsyncs), 1),
        "machine_batched": machine_contention(),
    }


def event_loop_runner():
    """uvloop when installed (as the operators use): the load generator shares the cores with the operators, so
    its own event-loop overhead is taken from theirs."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--traders", type=int, default=256)
    parser.add_argument("--per-trader", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=20, help="actions per Batch request in the batched run")
    parser.add_argument("--batch-per-trader", type=int, default=40, help="pre-signed batches per trader")
    parser.add_argument("--profile-leader", metavar="PATH",
                        help="run py-spy (on PATH) on the leader during the batched saturation; collapsed stacks to PATH")
    parser.add_argument("--profile-follower", metavar="PATH", help="the same for one follower")
    parser.add_argument("--profile-gil", action="store_true",
                        help="sample only the thread holding the GIL (the Python CPU; not C code that releases it)")
    parser.add_argument("--quick", action="store_true",
                        help="HTTP saturation and half load only (no curve, WebSocket or batched phases): for A/B runs")
    parser.add_argument("--admission-threads", type=int, default=0,
                        help="api.admission_threads of the operators (signature checks off the loop; 0 = on it)")
    parser.add_argument("--raft-knob", action="append", default=[],
                        help="NAME=VALUE (JSON value) for the operators' [raft] section, e.g. inline_write_below_ms=0.3")
    args = parser.parse_args()
    result = event_loop_runner()(run(args))
    if not args.json:
        for key, value in result.items():
            print(f"{key:>36}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
