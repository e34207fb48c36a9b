"""`ddx node --config FILE`: run one operator until SIGTERM/SIGINT.

Start order: config -> keystore -> genesis -> engine + state machine + history -> chain side (when [chain] names
an RPC: reads the operator set) -> Raft (restores its snapshot and replays its log into the state machine) -> API ->
chain watcher and checkpointer. Stop order is the reverse, so no receipt is sent by a node whose Raft has stopped
and no checkpoint is signed by a node whose API is gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time

from aiohttp import web

from ..api.server import build_app
from ..chain.operator_chain import ChainSetupError, OperatorChain, build_operator_chain
from ..chain.signatures import HttpSignatureExchange, signature_routes
from ..deployment.genesis import load_genesis
from ..deployment.manifest import load_manifest
from ..engine.engine import Engine
from ..node.admission import AdmissionLimits
from ..node.engine_adapter import EngineAdapter
from ..node.operator import OperatorNode
from ..node.raft_sequencer import RaftSequencer
from ..node.state_machine import REFUSED, AppliedEntry
from ..node.tasks import cancel_and_wait
from ..protocol.eip712 import parse_address
from ..raft.runtime import NodeConfig, RaftNode
from ..raft.transport import TlsMaterial
from .config import NodeSettings
from .keystore import load_operator_key

log = logging.getLogger("ddx.node")
STATUS_LOG_SECONDS = 10.0


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, node id, and term / request index when known."""

    def __init__(self, node_id: int) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "node": self.node_id,
            "msg": record.getMessage(),
        }
        for field in ("term", "request_index", "log_index", "reason"):
            value = getattr(record, field, None)
            if value is not None:
                doc[field] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(node_id: int, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class OperatorProcess:
    """An operator with its Raft runtime and API started (also used in-process by tests and the devnet)."""

    def __init__(self, settings: NodeSettings, operator_key: bytes) -> None:
        self.settings = settings
        self.operator_key = operator_key
        genesis = load_genesis(settings.genesis)
        engine = EngineAdapter(Engine(genesis))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.node = OperatorNode(
            node_id=settings.node_id,
            domain=settings.domain,
            operator_key=operator_key,
            engine=engine,
            view=engine,
            history_path=settings.history_path,
            leader_urls=settings.api_urls,
            admission_limits=AdmissionLimits(settings.max_age_ms, settings.max_future_ms),
            replay_engine=lambda: EngineAdapter(Engine(genesis)),
            peer_api_urls=[url for node_id, url in sorted(settings.api_urls.items()) if node_id != settings.node_id]
            + list(settings.backfill_sources),
            rate_limits=settings.rate_limits,
            admission_threads=settings.admission_threads,
        )
        self.node.service.propose_timeout_s = settings.proposal_timeout_seconds
        self.node.service.listeners.append(self._log_refusal)
        pinned = {p.id: p.cert_pem for p in settings.peers} | {settings.node_id: settings.tls_cert_pem}
        self.raft = RaftNode(
            NodeConfig(
                node_id=settings.node_id,
                data_dir=settings.data_dir / "raft",
                listen=settings.raft_listen,
                peers={p.id: p.raft for p in settings.peers},
                tls=TlsMaterial(settings.tls_cert_pem, settings.tls_key_pem, pinned),
                tick_seconds=settings.tick_seconds,
                election_ticks=settings.election_ticks,
                snapshot_interval=settings.snapshot_interval,
                snapshot_keep_entries=settings.snapshot_keep_entries,
                write_in_thread=settings.write_in_thread,
                inline_write_below_seconds=settings.inline_write_below_seconds,
                proposal_timeout_seconds=settings.proposal_timeout_seconds,
                **dict(settings.raft_limits),
            ),
            self.node.service,  # the raft.fsm.StateMachine the runtime applies to
        )
        self.node.attach(RaftSequencer(self.raft))
        self.runner: web.AppRunner | None = None
        self._status_task: asyncio.Task | None = None
        self._history_task: asyncio.Task | None = None
        self.chain: OperatorChain | None = None
        self._signature_routes: list = []

    def attach_chain(self, chain: OperatorChain, signature_exchange=None) -> None:
        """Wire the chain side (docs/checkpoints.md) into this node: every applied entry reaches its verifier and
        checkpointer, its metrics and checkpoint stages land in the node's registry and history, /v1/status shows
        its progress, and an HTTP signature exchange is served at /v1/checkpoints/{epoch}/signature. It starts and
        stops with the node. `ddx node` calls this from its [chain] settings; the devnet with its in-process chain."""
        if self.chain is not None:
            raise RuntimeError("a chain side is already attached")
        if self.runner is not None:
            raise RuntimeError("attach the chain side before the node starts (its routes are mounted at start)")
        self.chain = chain
        self.node.service.listeners.append(chain.on_applied)
        self.node.service.restore_listeners.append(chain.on_restore)
        chain.attach(metrics=self.node.metrics, history=self.node.history)
        self.node.attach_checkpoints(chain)
        if isinstance(signature_exchange, HttpSignatureExchange):
            self._signature_routes = signature_routes(signature_exchange)

    @staticmethod
    def _log_refusal(applied: AppliedEntry) -> None:
        if applied.status == REFUSED:
            log.warning("entry refused by the state machine", extra={"request_index": applied.request_index,
                                                                   "log_index": applied.log_index, "reason": applied.reason})

    async def start(self) -> None:
        """Raises ChainSetupError (nothing started) when [chain] names an RPC that does not describe the deployment."""
        if self.chain is None and self.settings.rpc:
            adapter = self.node.engine
            built = await build_operator_chain(self.settings, self.node.service, lambda: adapter.engine, self.operator_key)
            if built is not None:
                self.attach_chain(*built)
        await self.raft.start()
        operators = [{"id": str(i), "api": url} for i, url in sorted(self.settings.api_urls.items())]
        app = build_app(self.node, max_body_bytes=self.settings.max_body_bytes, extra_routes=self._signature_routes,
                        token_decimals=_token_decimals(self.settings), info={"operators": operators},
                        cancel_margin_ms=self.settings.cancel_on_disconnect_margin_ms)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, port = self.settings.api_listen
        await web.TCPSite(self.runner, host, port, reuse_address=True).start()
        self._status_task = asyncio.get_running_loop().create_task(self._status_log())
        self._history_task = asyncio.get_running_loop().create_task(self.node.watch_history())
        if self.chain is not None:
            await self.chain.start()
        log.info("operator 0x%s serving the API on %s:%d, Raft on %s:%d", self.node.service.operator_address.hex(),
                 host, port, *self.settings.raft_listen)

    async def _status_log(self) -> None:
        last_role, last_logged = None, 0.0
        while True:
            raft = self.node.sequencer.status()
            role = raft.get("role")
            if role != last_role or time.monotonic() - last_logged >= STATUS_LOG_SECONDS:
                log.info("raft %s, leader %s, commit %d, applied %d", role, self.node.sequencer.leader_id(),
                         self.node.sequencer.commit_index(), self.node.sequencer.applied_index(),
                         extra={"term": raft.get("term")})
                last_role, last_logged = role, time.monotonic()
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self.chain is not None:
            await self.chain.stop()
        # awaited, not just cancelled: a history check still reading the database must end before history closes
        await cancel_and_wait([t for t in (self._status_task, self._history_task) if t is not None])
        if self.runner is not None:
            await self.runner.cleanup()
        await self.raft.shutdown()
        self.node.close()


async def serve(settings: NodeSettings, operator_key: bytes) -> None:
    await run_until_signalled(OperatorProcess(settings, operator_key))


async def run_until_signalled(running) -> None:
    """Start `running` (an operator or a replica process), serve until SIGTERM or SIGINT, then stop it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await running.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await running.stop()


def _token_decimals(settings: NodeSettings) -> dict[bytes, int]:
    """The collateral tokens' decimals, from the deployment manifest (checked at start) when [chain] names one."""
    if settings.manifest is None:
        return {}
    return {parse_address(c.token): c.decimals for c in load_manifest(settings.manifest).collateral}


def validate(config_path: str) -> tuple[NodeSettings, bytes]:
    """Everything `ddx node` checks before it starts anything: the config, the keystore (unlocked), the TLS identity,
    the deployment manifest against the key, and the genesis. Raises ConfigError or KeystoreError naming the field."""
    from ..protocol.eip712 import address_of
    from .config import ConfigError, load_config
    from .deployment_check import check_deployment

    settings = load_config(config_path)
    _check_tls(settings)
    key = load_operator_key(settings.keystore, settings.password_env)
    check_deployment(settings, address_of(key))
    try:
        load_genesis(settings.genesis)  # fail before Raft starts, with the field named
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings, key


def _check_tls(settings: NodeSettings) -> None:
    """The Raft TLS identity and every peer's pinned certificate parse (the runtime would fail later, at start)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from .config import ConfigError

    pems = [("raft.cert", settings.tls_cert_pem)] + [(f"peers[{p.id}].cert", p.cert_pem) for p in settings.peers]
    for field, pem in pems:
        try:
            x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ConfigError(f"{field}: not a PEM certificate ({exc})") from None
    try:
        serialization.load_pem_private_key(settings.tls_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"raft.key: not an unencrypted PEM private key ({exc})") from None


def check(config_path: str, echo=print) -> int:
    """`ddx operator check --config FILE`: validate without starting; 0 when the node would start, 2 otherwise."""
    from ..protocol.eip712 import address_of, checksum_address
    from .config import ConfigError
    from .keystore import KeystoreError

    try:
        settings, key = validate(config_path)
    except (ConfigError, KeystoreError) as exc:
        echo(f"ddx operator check: {exc}")
        return 2
    peers = ", ".join(f"{p.id}@{p.raft[0]}:{p.raft[1]}" for p in settings.peers) or "none"
    echo(f"config {config_path}: node {settings.node_id}, operator {checksum_address(address_of(key))}")
    echo(f"  domain chain {settings.domain.chain_id}, exchange {checksum_address(settings.domain.verifying_contract)}")
    echo(f"  raft {settings.raft_listen[0]}:{settings.raft_listen[1]} (TLS), peers {peers}")
    echo(f"  api {settings.api_listen[0]}:{settings.api_listen[1]}, data {settings.data_dir}")
    echo(f"  chain side: {'rpc ' + settings.rpc if settings.rpc else 'none (no [chain] rpc)'}"
         + (f", manifest {settings.manifest}" if settings.manifest else ""))
    echo("ok: the node would start with this config")
    return 0


def main(config_path: str) -> int:
    from .config import ConfigError
    from .keystore import KeystoreError

    try:
        settings, key = validate(config_path)
        setup_logging(settings.node_id)
    except (ConfigError, KeystoreError) as exc:
        print(f"ddx node: {exc}", file=sys.stderr)
        return 2
    try:
        _event_loop_runner()(serve(settings, key))
    except ChainSetupError as exc:
        print(f"ddx node: {exc}", file=sys.stderr)
        return 2
    return 0


def _event_loop_runner():
    """uvloop when installed: its transports, callbacks and timers cost about half of asyncio's, and the HTTP and
    Raft I/O around each request is a large share of the leader's CPU (docs/operations.md, Performance)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
