"""One operator, assembled: state machine + service + history + feeds + metrics behind the API.

The sequencer (Raft runtime, or any `Sequencer`) is attached after construction because the runtime needs the
node's entry sink (`OperatorNode.service`) to exist first. Status keeps the two clocks apart: `raft` (sequencing)
and `checkpoint` (anchoring on Ethereum) are separate sections and fail separately.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import DdxError
from ..protocol.eip712 import Domain
from .admission import Admission, AdmissionLimits, SignatureVerifier
from .backfill import HistoryBackfill, SnapshotMark
from .book_feed import BookHub
from .feeds import FeedHub
from .history import History
from .market_data import MarketData
from .node_metrics import NodeMetrics
from .rate_limits import RateLimiter, RateLimitSettings
from .sequencer import Sequencer
from .service import OperatorService, ReceiptRecord
from .state_machine import AppliedEntry, ExchangeStateMachine, ExecutionEngine
from .views import ExchangeView
from .wallclock import monotonic_ms, wall_clock_ms

log = logging.getLogger("ddx.node")

HISTORY_CHECK_EVERY_S = 300.0  # how often a node re-counts its history for gaps (and once at start)
BACKFILL_RETRY_FIRST_S = 1.0  # a failed history backfill is retried after this, doubling up to the max
BACKFILL_RETRY_MAX_S = 60.0
MARKET_DATA_PRIME = 200_000  # fills, funding and time updates read back from history after a snapshot install


class NoChainSide(DdxError):
    """Asked for what only a node with a chain side knows (no [chain] rpc configured)."""

    reason = "no_chain_side"


class CheckpointSource(Protocol):
    """The chain side's checkpoint progress, as the node shows it (chain/operator_chain.py provides it)."""

    async def inbox(self, trader: bytes | None) -> object:
        """The L1 inbox report (chain/inbox_report.py), forced requests filtered to `trader` when given."""
        ...

    def status(self) -> dict:
        """The `checkpoint` section of /v1/status (docs/checkpoints.md, "Statuses")."""
        ...

    def last_recorded_epoch(self) -> int | None:
        """The last epoch recorded on-chain, None before the first."""
        ...


class _UnattachedSequencer:
    """Placeholder until `attach` is called: refuses every proposal."""

    node_id = 0

    async def propose(self, data: bytes) -> int:
        from .sequencer import DefinitelyNotSequenced

        raise DefinitelyNotSequenced("no sequencer attached")

    def is_leader(self) -> bool:
        return False

    def leader_id(self) -> int | None:
        return None

    def applied_index(self) -> int:
        return 0

    def commit_index(self) -> int:
        return 0

    def status(self) -> dict:
        return {"role": "detached"}


class OperatorNode:
    def __init__(
        self,
        *,
        node_id: int,
        domain: Domain,
        operator_key: bytes | None,
        engine: ExecutionEngine,
        view: ExchangeView,
        history_path: Path | str | None,
        leader_urls: dict[int, str] | None = None,
        admission_limits: AdmissionLimits = AdmissionLimits(),
        now_ms: Callable[[], int] = wall_clock_ms,
        replay_engine: Callable[[], ExecutionEngine] | None = None,
        peer_api_urls: list[str] | None = None,
        rate_limits: RateLimitSettings | None = None,
        rate_clock_ms: Callable[[], int] = monotonic_ms,
        admission_threads: int = 0,
    ) -> None:
        """`replay_engine` (a fresh engine at genesis) and `peer_api_urls` enable the history backfill after a
        snapshot install (node/backfill.py). `rate_limits`: the admission rate limits (None: none), timed by
        `rate_clock_ms`."""
        self.node_id = node_id
        self.domain = domain
        self.engine = engine
        self.view = view
        self.metrics = NodeMetrics()
        self.history = History(history_path) if history_path is not None else None
        self.feeds = FeedHub(self.history)
        self.machine = ExchangeStateMachine(domain, engine)
        self.rate_limiter = (
            None if rate_limits is None
            else RateLimiter(rate_limits, rate_clock_ms, lambda bucket: self.metrics.rate_limited.labels(bucket).inc())
        )
        lookup = None
        if self.history is not None:
            history = self.history

            def lookup(request_hash: bytes) -> ReceiptRecord | None:
                fields = history.receipt_fields(request_hash)
                return ReceiptRecord(*fields) if fields else None

        self.service = OperatorService(
            domain=domain,
            operator_key=operator_key,
            machine=self.machine,
            sequencer=_UnattachedSequencer(),
            admission=Admission(domain, now_ms, admission_limits, self.rate_limiter, agent_problem=engine.agent_problem,
                                verifier=SignatureVerifier(admission_threads) if admission_threads else None),
            leader_urls=leader_urls,
            lookup_receipt=lookup,
        )
        self.market_data = MarketData(self._unit_of)
        self.book_feed = BookHub()
        self.service.listeners.append(self._on_applied)
        self.service.listeners.append(self._on_applied_market_data)
        self.service.restore_listeners.append(self._on_restore)
        self.service.restore_listeners.append(self._restart_market_data)
        self.backfill: HistoryBackfill | None = None
        if self.history is not None and replay_engine is not None and peer_api_urls:
            self.backfill = HistoryBackfill(domain=domain, history=self.history, make_engine=replay_engine, peer_urls=list(peer_api_urls))
        self._backfill_task: asyncio.Task | None = None
        self.history_missing = 0  # request indexes history lacks below its top, at the last check
        self.history_checked: dict | None = None
        self.service.observers.append(self.metrics.observe_submission)
        self.service.apply_observer = self.metrics.apply_time.observe
        self.metrics.on_refresh(self._refresh_metrics)
        self._checkpoints: CheckpointSource | None = None
        self.started_ms = now_ms()

    @property
    def sequencer(self) -> Sequencer:
        return self.service.sequencer

    def attach(self, sequencer: Sequencer) -> None:
        self.service.sequencer = sequencer

    def _on_restore(self) -> None:
        """A snapshot replaced the state: feeds restart at its ordinal; history lacks what it skipped, so a
        backfill from a peer starts (in the background: consensus never waits on history)."""
        self.feeds.restart_at(self.engine.last_ordinal())
        if self.backfill is None or self.history is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # restored outside the event loop (offline tools): nothing to schedule
            return
        mark = SnapshotMark(self.machine.next_request_index, self.machine.last_log_index, self.engine.state_root(),
                            self.engine.last_ordinal())
        if self._backfill_task is not None and not self._backfill_task.done():
            self._backfill_task.cancel()  # a newer snapshot supersedes it: the new run fills every hole below it
        self._backfill_task = loop.create_task(self._backfill(mark))

    async def _backfill(self, mark: SnapshotMark) -> None:
        """Fill history below the snapshot, retrying with backoff until it is whole: peers that were down (all
        nodes restarting together) come back, and a gap must never stay silently (docs/api.md, History)."""
        backfill = self.backfill
        if backfill is None:
            return
        delay = BACKFILL_RETRY_FIRST_S
        attempt = 0
        while True:
            attempt += 1
            try:
                done = await backfill.run(mark)
            except Exception:
                log.exception("history backfill failed")
                backfill.state = {"state": "failed", "errors": ["internal error"]}
                done = False
            if done:
                if self.feeds.gap_below <= mark.last_ordinal:
                    self.feeds.gap_below = 0  # history now holds every update up to the snapshot
                return
            backfill.state = backfill.state | {"attempts": attempt, "retryInSeconds": delay}
            log.warning("history backfill attempt %d failed; retrying in %.0f s", attempt, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKFILL_RETRY_MAX_S)

    def _on_applied(self, applied: AppliedEntry) -> None:
        self.metrics.observe_applied(applied.status, len(applied.updates))
        if self.history is not None:
            self.history.record(applied)
        self.feeds.publish(applied)

    def _unit_of(self, market: bytes) -> int | None:
        view = self.view.market(market)
        return None if view is None else 10**view.size_decimals

    def _on_applied_market_data(self, applied: AppliedEntry) -> None:
        """Market data follows the applied stream (a listener of its own: a failure there never stops the feeds)."""
        if not applied.updates:
            return
        outcome = self.market_data.apply([u.update for u in applied.updates])
        if outcome.payments and self.history is not None:
            self.history.record_funding(outcome.payments)
        if outcome.deltas:
            self.book_feed.publish(outcome.deltas)

    def _restart_market_data(self) -> None:
        """A snapshot replaced the state: books and positions from it, trades, candles and funding records from
        the newest history at or below it (node/market_data.py)."""
        seed = self.view.market_data_seed()
        self.market_data.restart(seed.ordinal, seed.time, seed.orders, seed.positions)
        if self.history is not None and seed.ordinal:
            older = self.history.latest_updates(("Fill", "FundingPaid", "TimeAdvanced"), seed.ordinal, MARKET_DATA_PRIME)
            self.market_data.replay_series(u.update for u in older)

    def _refresh_metrics(self) -> None:
        raft = self.sequencer.status()
        m = self.metrics
        m.raft_term.set(raft.get("term", 0))
        m.raft_commit.set(self.sequencer.commit_index())
        m.raft_applied.set(self.sequencer.applied_index())
        m.raft_last.set(raft.get("lastIndex", 0))
        m.raft_is_leader.set(1 if self.sequencer.is_leader() else 0)
        if raft.get("fsyncs") is not None:
            m.fsyncs.set(raft["fsyncs"])
            m.entries_persisted.set(raft.get("entriesPersisted", 0))
        if raft.get("fsyncSecondsTotal") is not None:
            m.fsync_seconds.set(raft["fsyncSecondsTotal"])
        m.engine_epoch.set(self.engine.epoch())
        if self.has_chain_side:  # nothing recorded yet lags by every epoch frozen, not by none
            m.checkpoint_lag.set(self.engine.epoch() - (self.last_recorded_epoch() or 0))
        if self.history is not None:
            m.history_backlog.set(self.history.enqueued - self.history.written)
            m.history_gaps.set(self.history_missing)

    def attach_checkpoints(self, source: CheckpointSource) -> None:
        """The chain side reports checkpoint progress here (docs/checkpoints.md); /v1/status shows it beside, never
        inside, `raft`; its last recorded epoch drives ddx_checkpoint_lag_epochs and the default proof epoch."""
        self._checkpoints = source

    @property
    def has_chain_side(self) -> bool:
        return self._checkpoints is not None

    def checkpoint_status(self) -> dict:
        if self._checkpoints is None:
            return {"state": "not_configured"}
        return self._checkpoints.status()

    def last_recorded_epoch(self) -> int | None:
        """The last epoch recorded on-chain; None before the first, or without a chain side."""
        return None if self._checkpoints is None else self._checkpoints.last_recorded_epoch()

    async def inbox(self, trader: bytes | None = None):
        if self._checkpoints is None:
            raise NoChainSide("this node has no chain side: it cannot read the inbox")
        return await self._checkpoints.inbox(trader)

    def status(self) -> dict:
        ready, why = self.readiness()
        return {
            "node": {
                "id": self.node_id,
                "operator": None if self.service.operator_address is None else "0x" + self.service.operator_address.hex(),
            },
            "readiness": {"ready": ready, "detail": why},  # /readyz's answer, inside a 200
            "raft": self.sequencer.status() | {
                "isLeader": self.sequencer.is_leader(),
                "leader": self.sequencer.leader_id(),
                "commitIndex": self.sequencer.commit_index(),
                "appliedIndex": self.sequencer.applied_index(),
            },
            "engine": {
                "epoch": self.engine.epoch(),
                "stateRoot": "0x" + self.engine.state_root().hex(),
                "nextRequestIndex": self.machine.next_request_index,
                "lastOrdinal": self.feeds.last_ordinal,
            },
            "checkpoint": self.checkpoint_status(),
            "history": None
            if self.history is None
            else {
                "schemaVersion": self.history.schema_version,
                "persistedRequestIndex": self.history.persisted_request_index,
                "persistedOrdinal": self.history.persisted_ordinal,
                "failed": self.history.failed,
                "missingRequests": self.history_missing,
                "lastCheck": self.history_checked,
                "backfill": None if self.backfill is None else self.backfill.state,
            },
        }

    def readiness(self) -> tuple[bool, str]:
        if self.sequencer.leader_id() is None:
            return False, "no known leader"
        applied, commit = self.sequencer.applied_index(), self.sequencer.commit_index()
        if applied < commit:
            return False, f"applied {applied} of commit {commit}"
        if self.history_missing:
            return False, f"history lacks {self.history_missing} request(s) below what it reports: repairing from peers"
        return True, "leader known and applied up to the commit index"

    async def check_history(self) -> int:
        """Count the request indexes history lacks below its persisted top; if any, repair them from a peer's log
        (the same verified backfill as after a snapshot, against this node's current state) unless a repair is
        already running. Returns the count (also in status, readiness and `ddx_history_missing_requests`)."""
        if self.history is None:
            return 0
        upto = self.history.persisted_request_index
        missing = await asyncio.to_thread(self.history.missing_requests, upto)
        self.history_missing = missing
        self.history_checked = {"upto": upto, "missing": missing, "atMs": wall_clock_ms()}
        if missing and self.backfill is not None and (self._backfill_task is None or self._backfill_task.done()):
            log.warning("history lacks %d request(s) below %d: repairing from peers", missing, upto)
            mark = SnapshotMark(self.machine.next_request_index, self.machine.last_log_index, self.engine.state_root(),
                                self.engine.last_ordinal())
            self._backfill_task = asyncio.get_running_loop().create_task(self._backfill(mark))
        return missing

    async def watch_history(self, every_s: float = HISTORY_CHECK_EVERY_S) -> None:
        """At start and then periodically: history must never keep a silent gap (docs/api.md, History)."""
        while True:
            try:
                missing = await self.check_history()
                if missing and self._backfill_task is not None:
                    await asyncio.shield(self._backfill_task)  # repaired (or cancelled by a newer snapshot)
                    await self.check_history()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("history check failed")
            await asyncio.sleep(every_s)

    def close(self) -> None:
        if self._backfill_task is not None:
            self._backfill_task.cancel()
        if self.history is not None:
            self.history.close()
