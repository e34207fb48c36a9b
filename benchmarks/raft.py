"""Raft benchmark: our 3-node cluster (separate processes, loopback, mutual TLS, fsync on) against PySyncObj.

    python benchmarks/raft.py [--json] [--seconds 3] [--rounds 3] [--windows 4000,16000]

Workload: 100-byte proposals, a counting state machine on both sides. For each system:
- saturation: a closed loop keeps N proposals outstanding for `--seconds`, for each N in `--windows`; committed
  proposals/s, each system's best N; the two systems are measured in alternating rounds and the ratio is the
  median of the per-round ratios (the machine's load drifts; alternation exposes both to the same drift);
- latency (ours, and PySyncObj's for reference): an open loop at half the median saturation rate; p50/p99 from
  submit to applied (for ours: committed on a quorum of fsync'd logs, then applied on the leader); for ours also
  `latency_curve`, the same at 10 %, 25 %, 50 % and 75 % of saturation.
The load runs inside the leader process for both (ours through `RaftNode.submit`, see ddx_offchain/testing/raft_cluster/loadgen.py),
because PySyncObj has no client protocol. Ours is also measured once through its control port from this separate
process (an extra client protocol and a fourth busy process). PySyncObj runs with its default settings (no journal
file, hence no fsync); it is installed from constraints.txt on first use if absent (the `bench` extra), and its
absence is reported clearly. The disk's own fdatasync latency is probed during the run, for context.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAYLOAD = b"x" * 100


# --- ours ----------------------------------------------------------------------------------------------------
async def _saturate(client, seconds: float, window: int) -> float:
    from ddx_offchain.testing.raft_cluster.control import RequestKind

    loop = asyncio.get_running_loop()
    committed = 0
    failed = 0
    stop_at = 0.0
    finished = loop.create_future()
    outstanding = 0

    def send() -> None:
        nonlocal outstanding
        outstanding += 1
        client.send(RequestKind.PROPOSE, payload=PAYLOAD).add_done_callback(done)

    def done(future) -> None:
        nonlocal committed, failed, outstanding
        outstanding -= 1
        if future.exception() is None and future.result().ok:
            committed += 1
        else:
            failed += 1
        if time.perf_counter() < stop_at:
            send()
        elif outstanding == 0 and not finished.done():
            finished.set_result(None)

    start = time.perf_counter()
    stop_at = start + seconds
    for _ in range(window):
        send()
    await finished
    elapsed = time.perf_counter() - start
    if failed:
        print(f"ours: {failed} proposals failed during saturation", file=sys.stderr)
    return committed / elapsed


async def _open_loop(client, rate: float, seconds: float) -> list[float]:
    from ddx_offchain.testing.raft_cluster.control import RequestKind

    latencies: list[float] = []
    pending: list[asyncio.Future] = []
    interval = 0.001
    per_tick = rate * interval
    credit = 0.0
    start = time.perf_counter()
    next_tick = start
    while time.perf_counter() - start < seconds:
        credit += per_tick
        while credit >= 1:
            credit -= 1
            sent = time.perf_counter()
            future = client.send(RequestKind.PROPOSE, payload=PAYLOAD)
            future.add_done_callback(lambda f, sent=sent: latencies.append(time.perf_counter() - sent)
                                     if f.exception() is None and f.result().ok else None)
            pending.append(future)
        next_tick += interval
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    await asyncio.gather(*pending, return_exceptions=True)
    return latencies


class OurCluster:
    """Our 3 server processes; load runs inside the leader process (loadgen.py), like PySyncObj's below."""

    def __init__(self, base: Path, knobs: dict | None = None) -> None:
        from ddx_offchain.testing.raft_cluster.localcluster import LocalCluster

        self.cluster = LocalCluster(base, 3, knobs={"state_machine": "counter", **(knobs or {})})
        self.cluster.start_all()
        self.client = None

    async def connect(self) -> None:
        leader = await self.cluster.wait_for_leader()
        self.leader_pid = self.cluster.nodes[leader].process.pid
        self.client = await self.cluster.client(leader)

    async def load(self, **fields) -> dict:
        from ddx_offchain.testing.raft_cluster.control import RequestKind

        budget = fields["load_milliseconds"] / 1000 + 30  # proposals time out after 10 s: never wait forever
        response = await asyncio.wait_for(self.client.call(RequestKind.LOAD, payload=PAYLOAD, **fields), budget)
        return response.status

    async def saturate(self, seconds: float, window: int) -> float:
        return (await self.load(load_milliseconds=int(seconds * 1000), window=window))["commits_per_s"]

    async def paced(self, seconds: float, rate: float) -> dict:
        return await self.load(load_milliseconds=int(seconds * 1000), rate=int(rate))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.cluster.close()


class TheirCluster:
    """Three PySyncObj processes (default SyncObjConf); the harness drives the leader through its stdin."""

    def __init__(self) -> None:
        from ddx_offchain.testing.raft_cluster.localcluster import free_port

        addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--pysyncobj-node", address,
                 *[f"--partner={p}" for p in addresses if p != address]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
            )
            for address in addresses
        ]
        self.leader = None
        for process in self.processes:
            hello = json.loads(process.stdout.readline())
            if hello.get("leader"):
                self.leader = process
        if self.leader is None:
            self.close_now()
            raise RuntimeError("no PySyncObj leader elected")

    def command(self, *words) -> dict:
        self.leader.stdin.write(" ".join(map(str, words)) + "\n")
        self.leader.stdin.flush()
        return json.loads(self.leader.stdout.readline())

    def saturate(self, seconds: float, window: int) -> float:
        return self.command("saturate", seconds, window)["commits_per_s"]

    def paced(self, seconds: float, rate: float) -> dict:
        return self.command("paced", seconds, rate)

    def close_now(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


# --- PySyncObj node process --------------------------------------------------------------------------------------
def _pysyncobj_available() -> str | None:
    """None if importable (installing it from constraints.txt if needed), else why not."""
    try:
        import pysyncobj  # noqa: F401

        return None
    except ImportError:
        pass
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), "pysyncobj"],
        capture_output=True, text=True,
    )
    if install.returncode != 0:
        return f"pysyncobj is not installed and could not be installed: {install.stderr.strip()[-300:]}"
    return None


def pysyncobj_node(self_address: str, partners: list[str]) -> None:
    """One PySyncObj process with default settings. Prints {"leader": bool} once a leader is known, then the
    leader runs the harness's commands from stdin ("saturate SECONDS WINDOW", "paced SECONDS RATE")."""
    from pysyncobj import SyncObj, replicated

    class Counter(SyncObj):
        def __init__(self) -> None:
            super().__init__(self_address, partners)
            self.count = 0

        @replicated
        def add(self, payload: bytes) -> int:
            self.count += 1
            return self.count

    node = Counter()
    deadline = time.time() + 30
    while time.time() < deadline and node._getLeader() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    leader = node._getLeader()
    print(json.dumps({"leader": leader is not None and str(leader) == self_address}), flush=True)
    lock = threading.Lock()

    def saturate(duration: float, window: int) -> dict:
        slots = threading.Semaphore(window)
        committed = [0]

        def done(result, error) -> None:
            if error == 0:  # FAIL_REASON.SUCCESS
                with lock:
                    committed[0] += 1
            slots.release()

        start = time.perf_counter()
        while time.perf_counter() - start < duration:
            if not slots.acquire(timeout=10):
                break  # nothing completes any more (e.g. it lost its leader): report what did commit
            node.add(PAYLOAD, callback=done)
        for _ in range(window):  # wait for the outstanding ones, but not forever: some may never call back
            if not slots.acquire(timeout=10):
                break
        return {"commits_per_s": committed[0] / (time.perf_counter() - start)}

    def paced(duration: float, rate: float) -> dict:
        latencies: list[float] = []

        def timed(sent: float):
            def callback(result, error) -> None:
                if error == 0:
                    with lock:
                        latencies.append(time.perf_counter() - sent)
            return callback

        start = time.perf_counter()
        sent_count = 0
        while (now := time.perf_counter()) - start < duration:
            due = int((now - start) * rate)
            while sent_count < due:
                node.add(PAYLOAD, callback=timed(time.perf_counter()))
                sent_count += 1
            time.sleep(0.001)
        time.sleep(2.0)
        with lock:
            ordered = sorted(latencies)
        if not ordered:
            return {"samples": 0}
        return {"samples": len(ordered), "p50_ms": 1000 * ordered[len(ordered) // 2],
                "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}

    for line in sys.stdin:
        words = line.split()
        if words and words[0] == "saturate":
            print(json.dumps(saturate(float(words[1]), int(words[2]))), flush=True)
        elif words and words[0] == "paced":
            print(json.dumps(paced(float(words[1]), float(words[2]))), flush=True)
    os._exit(0)  # stdin closed: the harness is gone (or done); do not linger on PySyncObj's threads


def probe_fdatasync(directory: Path, count: int = 200) -> dict:
    """The disk's own fdatasync latency right now (150-byte appends): the floor under our commit latency,
    which waits for two of them in sequence (leader, then follower)."""
    path = directory / "fdatasync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    timings = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 150)
            started = time.perf_counter()
            os.fdatasync(fd)
            timings.append(time.perf_counter() - started)
            time.sleep(0.002)
    finally:
        os.close(fd)
        path.unlink()
    timings.sort()
    return {"disk_fdatasync_p50_ms": round(1000 * timings[len(timings) // 2], 3),
            "disk_fdatasync_p99_ms": round(1000 * timings[int(len(timings) * 0.99)], 3)}


def _cluster_cpu_seconds(cluster) -> float:
    """User + system CPU seconds used so far by the cluster's server processes (Linux /proc; 0 elsewhere)."""
    total = 0
    for node in cluster.nodes.values():
        if node.process is None:
            continue
        try:
            fields = Path(f"/proc/{node.process.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _runqueue_wait_seconds(pid: int) -> float:
    """Seconds the threads of process `pid` have spent runnable but waiting for a CPU (Linux schedstat; 0 if
    unavailable): on a shared machine, the time a commit's steps queue behind other processes."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


# --- the run -----------------------------------------------------------------------------------------------------
CURVE_FRACTIONS = (0.10, 0.25, 0.50, 0.75)  # of the median saturation rate, for the latency curve


async def measure(seconds: float, windows: list[int], rounds: int, log, *, knobs: dict | None = None,
                  compare: bool = True, curve_base: float | None = None, profile_leader: str | None = None,
                  profile_gil: bool = False) -> dict:
    """Alternate ours and PySyncObj `rounds` times (the machine's load drifts; alternation exposes both to the
    same drift). "Saturation" is each system's best over the offered loads in `windows` (outstanding proposals):
    a slow disk needs more in flight to saturate a system that fsyncs, a CPU-bound one may prefer fewer. Report
    medians; then ours at half its median saturation for the latency figures.

    `compare=False` measures ours alone; `curve_base` fixes the rate the latency curve's fractions are of (instead of
    the measured saturation), so that runs of two builds offer exactly the same loads; `knobs` go into our
    servers' configs (e.g. inline_write_below_ms)."""
    report: dict = {}
    reason = _pysyncobj_available() if compare else "not compared (--only-ours)"
    window = windows[0]
    with tempfile.TemporaryDirectory(prefix="ddx-raft-bench-") as base:
        ours = OurCluster(Path(base), knobs)
        theirs = None
        try:
            await ours.connect()
            if reason is None:
                try:
                    theirs = TheirCluster()
                except (RuntimeError, ValueError) as exc:
                    reason = f"PySyncObj cluster did not start: {exc}"
            await ours.saturate(1.0, window)  # warm-up: connections, allocator, page cache
            if theirs is not None:
                theirs.saturate(1.0, window)
            our_rates, their_rates, ratios = [], [], []
            for round_number in range(rounds):
                ours_by_window, theirs_by_window = {}, {}
                for window in windows:
                    ours_by_window[window] = await ours.saturate(seconds, window)
                    if theirs is not None:
                        theirs_by_window[window] = theirs.saturate(seconds, window)
                our_rates.append(max(ours_by_window.values()))
                if theirs is not None:
                    their_rates.append(max(theirs_by_window.values()))
                    ratios.append(our_rates[-1] / their_rates[-1])
                log(f"round {round_number + 1}: ours {ours_by_window}, PySyncObj {theirs_by_window}")
            throughput = statistics.median(our_rates)
            if curve_base is not None:
                throughput = curve_base
            report.update(probe_fdatasync(Path(base)))
            cpu_before = _cluster_cpu_seconds(ours.cluster)
            profiler = None
            if profile_leader:  # py-spy (on PATH) on the leader during the half-load point: collapsed stacks
                profiler = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(ours.leader_pid), "--duration", str(max(1, int(seconds))),
                     "--rate", "250", "--nonblocking", "--threads", "--format", "raw", "--output", profile_leader,
                     *(["--gil"] if profile_gil else [])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pids = {node_id: node.process.pid for node_id, node in ours.cluster.nodes.items() if node.process}
            waited_before = {node_id: _runqueue_wait_seconds(pid) for node_id, pid in pids.items()}
            half_started = time.perf_counter()
            half = await ours.paced(seconds, throughput / 2)
            half_elapsed = time.perf_counter() - half_started
            # Per server, ms per second spent runnable but waiting for a core during the half-load point.
            report["half_load_runqueue_wait_ms_per_s"] = {
                ("leader" if pid == ours.leader_pid else f"follower{node_id}"):
                    round(1000 * (_runqueue_wait_seconds(pid) - waited_before[node_id]) / half_elapsed, 1)
                for node_id, pid in pids.items()}
            if profiler is not None:
                profiler.wait(30)
            curve = []  # the latency curve (issue 11): p50/p99 at a quarter, a tenth and three quarters too
            for fraction in CURVE_FRACTIONS:
                point = half if fraction == 0.5 else await ours.paced(seconds, throughput * fraction)
                curve.append({"load": fraction, "offered_per_s": round(point["offered_per_s"]),
                              "p50_ms": round(point["p50_ms"], 3), "p99_ms": round(point["p99_ms"], 3),
                              "samples": point["samples"]})
            report["latency_curve"] = curve
            # CPU of the three servers (user + system, from /proc) over the whole latency curve, per commit.
            curve_commits = sum(point["samples"] for point in curve)
            report["curve_cpu_us_per_commit"] = round(
                1e6 * (_cluster_cpu_seconds(ours.cluster) - cpu_before) / max(1, curve_commits), 2)
            report.update(
                ours_commits_per_s=round(throughput),
                ours_rounds=[round(r) for r in our_rates],
                p50_ms=round(half["p50_ms"], 3),
                p99_ms=round(half["p99_ms"], 3),
                half_load_rate=round(throughput / 2),
                half_load_offered_per_s=round(half["offered_per_s"]),
                half_load_samples=half["samples"],
            )
            # Through the control port from this separate process: adds a client protocol (our extra cost).
            if compare:
                report["ours_external_client_commits_per_s"] = round(await _saturate(ours.client, seconds, windows[0]))
            if theirs is not None:
                their_half = theirs.paced(seconds, statistics.median(their_rates) / 2)
                report.update(
                    pysyncobj_commits_per_s=round(statistics.median(their_rates)),
                    pysyncobj_rounds=[round(r) for r in their_rates],
                    pysyncobj_p50_ms=round(their_half.get("p50_ms", -1), 3),
                    pysyncobj_p99_ms=round(their_half.get("p99_ms", -1), 3),
                    ratio=round(statistics.median(ratios), 2),
                )
            else:
                report.update(pysyncobj_commits_per_s=None, ratio=None, pysyncobj_error=reason)
        finally:
            if theirs is not None:
                theirs.close_now()
            await ours.close()
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating saturation rounds per system")
    parser.add_argument("--windows", default="4000,16000",
                        help="outstanding proposals tried at saturation (comma-separated); each system's best counts")
    parser.add_argument("--only-ours", action="store_true", help="skip PySyncObj and the external-client run")
    parser.add_argument("--curve-base", type=float,
                        help="rate (commits/s) the latency curve's fractions are of, instead of the measured saturation")
    parser.add_argument("--knob", action="append", default=[],
                        help="NAME=VALUE for our servers' config (e.g. inline_write_below_ms=0.3); repeatable")
    parser.add_argument("--profile-leader", metavar="PATH",
                        help="run py-spy (on PATH) on our leader during the half-load point; collapsed stacks to PATH")
    parser.add_argument("--profile-gil", action="store_true", help="sample only the thread holding the GIL")
    parser.add_argument("--pysyncobj-node")
    parser.add_argument("--partner", action="append", default=[])
    args = parser.parse_args()
    if args.pysyncobj_node:
        pysyncobj_node(args.pysyncobj_node, args.partner)
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    windows = [int(w) for w in args.windows.split(",") if w.strip()]
    knobs = {}
    for knob in args.knob:
        name, _, value = knob.partition("=")
        knobs[name] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    report = asyncio.run(measure(args.seconds, windows, args.rounds, log, knobs=knobs, compare=not args.only_ours,
                                 curve_base=args.curve_base, profile_leader=args.profile_leader,
                                 profile_gil=args.profile_gil))
    report.update(knobs=knobs)
    report.update(fsync=True, payload_bytes=len(PAYLOAD), nodes=3, cpus=os.cpu_count(), windows=windows,
                  load_average_1m=round(os.getloadavg()[0], 2))
    if not args.json:
        print(f"ours: {report['ours_commits_per_s']} commits/s at saturation (fsync on); at "
              f"{report['half_load_rate']}/s p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms (the disk's own "
              f"fdatasync meanwhile: p50 {report['disk_fdatasync_p50_ms']} ms, p99 {report['disk_fdatasync_p99_ms']} "
              f"ms); through the control port from another process {report.get('ours_external_client_commits_per_s')}/s")
        if report.get("ratio") is None:
            print(f"PySyncObj: not measured ({report.get('pysyncobj_error')})")
        else:
            print(f"PySyncObj: {report['pysyncobj_commits_per_s']} commits/s (default settings, no fsync); "
                  f"ratio {report['ratio']}x")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
