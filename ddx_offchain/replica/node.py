"""`ddx replica`: a public follower anyone can run — no Raft membership, no operator key.

It follows the request log from any operator's public API (replica/follower.py), re-verifies every trader
signature and replays every entry through the engine exactly as the operators do, checks every chain-origin entry
and every recorded checkpoint against its own RPC (replica/watch.py), and serves the same read API as an operator
(an `OperatorNode` with a read-only sequencer behind the same aiohttp app): books, traders, updates and their
WebSocket feeds, receipts (unsigned: it holds no key), the request log, and withdrawal and balance proofs for every
retained epoch the chain agrees with. Writes are refused with the operators to send them to.

State survives a restart: history (SQLite, written as entries apply) and a snapshot of the state machine taken
every `snapshot_every` requests (written to a temporary file, fsync'd, renamed); a restart restores the snapshot
and follows the log from there.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..chain.operator_chain import ChainHooks
from ..chain.rpc import ChainRpc
from ..chain.verifier import BlockVerifier
from ..engine.config import GenesisConfig
from ..engine.engine import Engine
from ..node.engine_adapter import EngineAdapter
from ..node.operator import OperatorNode
from ..node.rate_limits import BucketSpec, RateLimitSettings
from ..node.tasks import cancel_and_wait
from ..node.views import ProofUnavailable
from ..protocol.eip712 import Domain
from ..raft.logstore.fileio import atomic_write
from .follower import LogFollower, ReplicaSequencer
from .watch import ReplicaAudit

log = logging.getLogger("ddx.replica")

SNAPSHOT_FILE = "replica.snapshot"
SNAPSHOT_EVERY = 10_000  # requests between snapshots


class DisputedEpoch(ProofUnavailable):
    """A proof against an epoch the replica's audit disputes: it will not vouch for it."""


class ProofGuard:
    """The replica's ExchangeView: the engine's views, but no proof against a disputed epoch."""

    def __init__(self, view: EngineAdapter, audit: ReplicaAudit) -> None:
        self._view = view
        self._audit = audit

    def __getattr__(self, name):
        return getattr(self._view, name)

    def _vouch(self, epoch: int | None) -> None:
        target = epoch if epoch is not None else self._view.engine.epoch
        if self._audit.is_disputed(target):
            reason = self._audit.epochs[target].detail
            raise DisputedEpoch(f"this replica disputes epoch {target}: {reason}", reason="disputed_epoch")

    async def prepare_proofs(self, epoch: int | None) -> None:
        self._vouch(epoch)
        await self._view.prepare_proofs(epoch)

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None):
        self._vouch(epoch)
        return self._view.withdrawal_proof(trader, token, epoch)

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None):
        self._vouch(epoch)
        return self._view.balance_proof(trader, token, epoch)


class SnapshotStore:
    """One snapshot file, replaced atomically (raft/logstore/fileio.py: temporary file, fsync, rename, fsync)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def save(self, data: bytes) -> None:
        atomic_write(self.path, [data])


READ_LIMIT = BucketSpec(200, 100)  # per client IP: the operators' default read bucket


class Replica:
    def __init__(
        self,
        *,
        domain: Domain,
        genesis: GenesisConfig,
        data_dir: Path,
        sources: list[str],
        rpc: ChainRpc,
        confirmations: int = 0,
        snapshot_every: int = SNAPSHOT_EVERY,
        audit_interval_s: float = 1.0,
        poll_s: float = 0.2,
        read_limit: BucketSpec | None = READ_LIMIT,
        trusted_proxies: tuple = (),
    ) -> None:
        """`read_limit`: the per-IP bucket every read takes a token from (a public replica serves anyone; None:
        no limit); `trusted_proxies`: reverse proxies whose X-Forwarded-For names the client (node/rate_limits.py)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        self.rpc = rpc
        engine = EngineAdapter(Engine(genesis))
        self.verifier = BlockVerifier(rpc, confirmations=confirmations)
        self.audit = ReplicaAudit(rpc, self.verifier, lambda: engine.engine)
        self.node = OperatorNode(
            node_id=0,
            domain=domain,
            operator_key=None,
            engine=engine,
            view=ProofGuard(engine, self.audit),
            history_path=data_dir / "history.sqlite",
            # a replica sequences nothing: only its reads are limited
            rate_limits=None if read_limit is None else RateLimitSettings(
                trader=None, ip=None, connection=None, read=read_limit, trusted_proxies=trusted_proxies,
            ),
        )
        self.follower = LogFollower(self.node.service, sources, poll_s=poll_s)
        self.node.attach(ReplicaSequencer(self.follower))
        self.node.attach_checkpoints(self.audit)
        hooks = ChainHooks(self.verifier, self.audit)
        self.node.service.listeners.append(lambda applied: hooks.on_applied(applied, engine.engine))
        self.snapshots = SnapshotStore(data_dir / SNAPSHOT_FILE)
        self.snapshot_every = snapshot_every
        self.audit_interval_s = audit_interval_s
        self._snapshot_at = 0  # next_request_index of the last snapshot
        self._tasks: list[asyncio.Task] = []
        self._register_metrics()

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def restore(self) -> bool:
        """Resume from the last snapshot, if any: the state machine (engine, sessions, cursors) as it was; the
        epochs it retains are audited again by their roots."""
        data = self.snapshots.load()
        if data is None:
            return False
        self.node.service.restore(data)
        engine = self.node.engine.engine
        for epoch in engine.retained_epochs:
            self.audit.epoch_frozen(epoch, engine.epochs[epoch].root, 0, b"\x00" * 32, engine.inbox_cursor())
            self.audit.epochs[epoch].inbox_checked = True  # checked before the snapshot, or not knowable now
        self._snapshot_at = self.node.machine.next_request_index
        log.info("replica resumed at request %d (epoch %d)", self._snapshot_at, engine.epoch)
        return True

    async def start_following(self) -> None:
        """Follow the source and audit (after `restore`, and once the API serves)."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.follower.run()),
            loop.create_task(self._audit_loop()),
            loop.create_task(self._snapshot_loop()),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.snapshot()
        self.node.close()
        close = getattr(self.rpc, "close", None)
        if close is not None:
            await close()

    async def _audit_loop(self) -> None:
        while True:
            await self.audit.tick()
            await asyncio.sleep(self.audit_interval_s)

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.node.machine.next_request_index - self._snapshot_at >= self.snapshot_every:
                await self.snapshot()

    async def snapshot(self) -> None:
        """Persist the state machine (history first, so nothing the snapshot covers is missing from it)."""
        at = self.node.machine.next_request_index
        if at == self._snapshot_at:
            return
        encode = self.node.service.capture()
        if self.node.history is not None:
            await asyncio.to_thread(self.node.history.flush)
        data = await asyncio.to_thread(encode)
        await asyncio.to_thread(self.snapshots.save, data)
        self._snapshot_at = at

    # ---- what the API and operators see --------------------------------------------------------------------

    def lag(self) -> int:
        """Log entries its source has shown that this replica has not applied."""
        return max(0, self.follower.source_log_index - self.node.machine.last_log_index)

    def readiness(self) -> tuple[bool, str]:
        if self.follower.alarm:
            return False, f"stopped following: {self.follower.alarm}"
        if self.audit.disputed():
            return False, "the replay disagrees with the chain (see /v1/status)"
        lag = self.lag()
        if lag > 0:
            return False, f"{lag} log entries behind its source"
        return True, "following its source and agreeing with the chain"

    def _register_metrics(self) -> None:
        from prometheus_client import Gauge

        r = self.node.metrics.registry
        lag = Gauge("ddx_replica_lag_entries", "Log entries the source has that this replica has not applied", registry=r)
        disputed = Gauge("ddx_replica_disputed_epochs", "Epochs whose replay disagrees with the chain (alarm)", registry=r)
        audited = Gauge("ddx_replica_audited_epochs", "Recorded epochs whose root the replay reproduced", registry=r)
        halted = Gauge("ddx_replica_halted", "1 if the replica stopped following (its source's log does not replay)", registry=r)
        switches = Gauge("ddx_replica_source_switches", "Times the replica switched to another operator", registry=r)

        def refresh() -> None:
            lag.set(self.lag())
            disputed.set(len(self.audit.disputed()))
            audited.set(self.audit.audited)
            halted.set(1 if self.follower.alarm else 0)
            switches.set(self.follower.switches)

        self.node.metrics.on_refresh(refresh)


class ReplicaFacade:
    """What the API serves from (api/server.py NodeFacade): the replica's node, its status and readiness."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        node = replica.node
        self.service, self.view, self.history, self.feeds, self.metrics = (
            node.service, node.view, node.history, node.feeds, node.metrics,
        )
        self.rate_limiter = node.rate_limiter  # reads only (Replica's read_limit)
        self.market_data, self.book_feed = node.market_data, node.book_feed

    def status(self) -> dict:
        return self.replica.node.status() | {"replica": self.replica.follower.status()}

    def readiness(self) -> tuple[bool, str]:
        return self.replica.readiness()

    def checkpoint_status(self) -> dict:
        return self.replica.audit.status()

    @property
    def has_chain_side(self) -> bool:
        return True

    def last_recorded_epoch(self) -> int | None:
        return self.replica.audit.last_recorded_epoch()

    async def inbox(self, trader: bytes | None = None):
        return await self.replica.audit.inbox(trader)
