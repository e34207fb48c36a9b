"""A Raft server process: `python -m ddx_offchain.testing.raft_cluster.server --config node.toml`.

Runs one `RaftNode` with a small deterministic state machine (`DigestStateMachine`: counts the applied commands
and chains their hashes, so two nodes that applied the same sequence report the same digest) and the loopback
control port (`control.py`). Used by the process-level tests and the benchmark; the operator node
(`ddx_offchain/node`) embeds `RaftNode` with the exchange engine instead.

Config (TOML)::

    node_id = 1
    data_dir = "/var/lib/ddx/raft-1"
    listen = "127.0.0.1:7001"          # peer port (mutual TLS)
    control = "127.0.0.1:8001"         # loopback control port
    cert = "op1.crt"                   # this operator's certificate and key (PEM)
    key = "op1.key"
    tick_ms = 50                       # optional knobs: election_ticks, heartbeat_ticks, snapshot_interval,
                                       # snapshot_keep_entries, segment_bytes, max_batch_proposals,
                                       # proposal_timeout_ms, join (true: added to a running cluster, no
                                       # bootstrap), state_machine ("digest" or "counter")
    [[operators]]                      # every operator, this one included
    id = 1
    address = "127.0.0.1:7001"
    cert = "op1.crt"

On SIGTERM/SIGINT the node shuts down cleanly (flushes the hard state); SIGKILL is what the durability tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import msgspec

from ddx_offchain.raft.codec import LENGTH_PREFIX_BYTES
from ddx_offchain.raft.fsm import Command
from ddx_offchain.raft.logstore import LogStoreError
from ddx_offchain.raft.runtime import NodeConfig, RaftError, RaftNode
from ddx_offchain.raft.transport import TlsMaterial
from ddx_offchain.testing.raft_cluster import loadgen
from ddx_offchain.testing.raft_cluster.control import (
    MAX_CONTROL_FRAME_BYTES,
    ControlRequest,
    ControlResponse,
    RequestKind,
    decode_request,
    encode_control,
)

from ...errors import DdxError

log = logging.getLogger("ddx.raft.server")


class ConfigFileError(DdxError, ValueError):
    """The server config is missing a field or has a bad value; the process exits without starting."""


class DigestStateMachine:
    """Counts applied commands and chains a SHA-256 over their (index, payload); result = the count so far."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = b"\x00" * 32

    def apply(self, commands: Sequence[Command]) -> list[bytes | None]:
        results: list[bytes | None] = []
        digest = self.digest
        count = self.count
        for command in commands:
            count += 1
            digest = hashlib.sha256(digest + command.payload).digest()
            results.append(count.to_bytes(8, "big"))
        self.count, self.digest = count, digest
        return results

    def snapshot(self) -> bytes:
        return self.count.to_bytes(8, "big") + self.digest

    def restore(self, data: bytes) -> None:
        self.count, self.digest = int.from_bytes(data[:8], "big"), data[8:40]


class CounterStateMachine:
    """Counts applied commands, nothing else: the benchmark's state machine (PySyncObj's is the same)."""

    def __init__(self) -> None:
        self.count = 0
        self.digest = b""

    def apply(self, commands: Sequence[Command]) -> list[bytes | None]:
        self.count += len(commands)
        return [None] * len(commands)

    def snapshot(self) -> bytes:
        return self.count.to_bytes(8, "big")

    def restore(self, data: bytes) -> None:
        self.count = int.from_bytes(data[:8], "big")


STATE_MACHINES = {"digest": DigestStateMachine, "counter": CounterStateMachine}


def _address(text: str, field: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigFileError(f"{field}: expected host:port, got {text!r}")
    return host, int(port)


_KNOBS = {
    "tick_ms": ("tick_seconds", lambda v: v / 1000),
    "election_ticks": ("election_ticks", int),
    "heartbeat_ticks": ("heartbeat_ticks", int),
    "snapshot_interval": ("snapshot_interval", int),
    "snapshot_keep_entries": ("snapshot_keep_entries", int),
    "segment_bytes": ("segment_bytes", int),
    "max_batch_proposals": ("max_batch_proposals", int),
    "proposal_timeout_ms": ("proposal_timeout_seconds", lambda v: v / 1000),
    "join": ("join", bool),
    "write_in_thread": ("write_in_thread", bool),
    "inline_write_below_ms": ("inline_write_below_seconds", lambda v: v / 1000),
    "max_inbox_messages": ("max_inbox_messages", int),
    "max_inbox_bytes": ("max_inbox_bytes", int),
}


def load_config(path: Path) -> tuple[NodeConfig, tuple[str, int], str]:
    """Parse and validate a server config file; returns the node config, the control address and the name of
    the state machine ("digest", the default, or "counter")."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}") from None
    base = Path(path).parent
    try:
        node_id = int(raw["node_id"])
        operators = raw["operators"]
        own_cert = (base / raw["cert"]).read_bytes()
        own_key = (base / raw["key"]).read_bytes()
        control = _address(raw["control"], "control")
        listen = _address(raw["listen"], "listen")
        data_dir = base / raw["data_dir"]
        pinned: dict[int, bytes] = {}
        addresses: dict[int, tuple[str, int]] = {}
        for operator in operators:
            operator_id = int(operator["id"])
            if operator_id in pinned:
                raise ConfigFileError(f"operator {operator_id} listed twice")
            pinned[operator_id] = (base / operator["cert"]).read_bytes()
            addresses[operator_id] = _address(operator["address"], f"operators[{operator_id}].address")
        knobs = {name: convert(raw[key]) for key, (name, convert) in _KNOBS.items() if key in raw}
        state_machine = str(raw.get("state_machine", "digest"))
    except KeyError as exc:
        raise ConfigFileError(f"{path}: missing field {exc}") from None
    except (OSError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigFileError):
            raise
        raise ConfigFileError(f"{path}: {exc}") from None
    if state_machine not in STATE_MACHINES:
        raise ConfigFileError(f"{path}: state_machine must be one of {sorted(STATE_MACHINES)}")
    if node_id not in pinned:
        raise ConfigFileError(f"{path}: node {node_id} is not among the operators")
    if pinned[node_id] != own_cert:
        raise ConfigFileError(f"{path}: cert does not match operator {node_id}'s pinned certificate")
    if not ipaddress.ip_address(control[0]).is_loopback:
        raise ConfigFileError(f"{path}: the control port must listen on a loopback address")
    config = NodeConfig(
        node_id=node_id,
        data_dir=data_dir,
        listen=listen,
        peers={other: address for other, address in addresses.items() if other != node_id},
        tls=TlsMaterial(own_cert, own_key, pinned),
        **knobs,
    )
    return config, control, state_machine


class Server:
    def __init__(self, config: NodeConfig, control: tuple[str, int], state_machine: str = "digest") -> None:
        self.machine = STATE_MACHINES[state_machine]()
        self.node = RaftNode(config, self.machine)
        self.control_address = control
        self._control_server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        await self.node.start()
        loop = asyncio.get_running_loop()
        self._control_server = await loop.create_server(lambda: _ControlConnection(self), *self.control_address)

    async def stop(self) -> None:
        if self._control_server is not None:
            self._control_server.close()
        await self.node.shutdown()

    def status(self) -> dict:
        status = asdict(self.node.status())
        status["fsm_count"] = self.machine.count
        status["fsm_digest"] = self.machine.digest.hex()  # empty for the counter
        status["counters"] = asdict(self.node.counters)
        return status


class _ControlConnection(asyncio.Protocol):
    """One control client. Requests are parsed straight from the socket buffer and proposals submitted without a
    task each; answers are coalesced into one write per event-loop turn (a send per answer would cost more
    than the consensus work it reports on)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.out = bytearray()
        self.flush_scheduled = False
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for task in self.tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset, size = 0, len(buffer)
        while size - offset >= LENGTH_PREFIX_BYTES:
            length = int.from_bytes(buffer[offset : offset + LENGTH_PREFIX_BYTES], "big")
            if length > MAX_CONTROL_FRAME_BYTES:
                log.warning("control: frame of %d bytes; closing", length)
                buffer.clear()
                if self.transport is not None:
                    self.transport.close()
                return
            end = offset + LENGTH_PREFIX_BYTES + length
            if end > size:
                break
            try:
                request = decode_request(bytes(buffer[offset + LENGTH_PREFIX_BYTES : end]))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("control: malformed request dropped: %s", exc)
            else:
                self._handle(request)
            offset = end
        if offset:
            del buffer[:offset]

    def _handle(self, request: ControlRequest) -> None:
        node = self.server.node
        if request.kind == RequestKind.PROPOSE:
            try:
                future = node.submit(request.payload, client_id=request.client_id, sequence=request.sequence)
            except (RaftError, ValueError) as exc:
                self._reply(self._error(request, exc))
                return
            future.add_done_callback(lambda done: self._proposed(request, done))
        elif request.kind == RequestKind.STATUS:
            self._reply(ControlResponse(request.id, True, status=self.server.status()))
        else:
            task = asyncio.get_running_loop().create_task(self._slow(request))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _proposed(self, request: ControlRequest, done: asyncio.Future) -> None:
        if done.cancelled():
            return
        error = done.exception()
        if error is None:
            applied = done.result()
            self._reply(ControlResponse(request.id, True, index=applied.index, result=applied.result,
                                        duplicate=applied.duplicate))
        else:
            self._reply(self._error(request, error))

    async def _slow(self, request: ControlRequest) -> None:
        node = self.server.node
        try:
            if request.kind == RequestKind.READ_INDEX:
                response = ControlResponse(request.id, True, index=await node.read_index())
            elif request.kind == RequestKind.LOAD:
                seconds = request.load_milliseconds / 1000
                if request.rate > 0:
                    report = await loadgen.open_loop(node, request.payload, seconds, request.rate)
                else:
                    report = await loadgen.closed_loop(node, request.payload, seconds, max(1, request.window))
                response = ControlResponse(request.id, True, status=report)
            else:
                await node.transfer_leadership(request.target)
                response = ControlResponse(request.id, True)
        except (RaftError, ValueError) as exc:
            response = self._error(request, exc)
        self._reply(response)

    def _error(self, request: ControlRequest, exc: BaseException) -> ControlResponse:
        node = self.server.node
        leader = 0 if node._stopping else node.status().leader
        return ControlResponse(request.id, False, error=type(exc).__name__, detail=str(exc), leader=leader)

    def _reply(self, response: ControlResponse) -> None:
        if self.transport is None:
            return
        self.out += encode_control(response)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.transport is not None and self.out:
            self.transport.write(bytes(self.out))
        self.out.clear()


def tune_garbage_collector() -> None:
    """The log cache keeps hundreds of thousands of small objects alive and the request path allocates a few
    per proposal; with CPython's default thresholds a full collection then runs several times a second and walks
    the whole cache. Nothing here relies on the cycle collector (no reference cycles on the hot path), so collect
    far less often and move everything allocated at start-up out of its sight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


async def _watch_parent(stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (we get re-parented)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            log.warning("parent process %d is gone; shutting down", parent)
            stop.set()


async def _run(config_path: Path, exit_with_parent: bool = False) -> int:
    config, control, state_machine = load_config(config_path)
    server = Server(config, control, state_machine)
    await server.start()
    tune_garbage_collector()
    print(f"READY node={config.node_id} peer_port={server.node.port} control_port={control[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(_watch_parent(stop)) if exit_with_parent else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await server.stop()
    return 0


def _event_loop_runner():
    """uvloop when installed (its callbacks, transports and TLS cost about half of asyncio's), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one ddx Raft server process.")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="shut down cleanly when the parent process exits (test and benchmark harnesses)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _event_loop_runner()(_run(args.config, args.exit_with_parent))
    except ConfigFileError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except LogStoreError as exc:
        # A damaged log or snapshot: refuse to start and say exactly where (never repair acknowledged data).
        print(f"storage error: {exc}", file=sys.stderr)
        log.critical("storage error: %s", exc)
        return 3


if __name__ == "__main__":
    sys.exit(main())
