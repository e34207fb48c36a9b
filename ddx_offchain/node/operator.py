"""One operator, assembled: state machine + service + history + feeds + metrics behind the API.

The sequencer (Raft runtime, or any `Sequencer`) is attached after construction because the runtime needs the
node's entry sink (`OperatorNode.service`) to exist first. Status keeps the two clocks apart: `raft` (sequencing)
and `checkpoint` (anchoring on Ethereum) are separate sections and fail separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..api.admission import Admission, AdmissionLimits
from ..api.feeds import FeedHub
from ..protocol.eip712 import Domain
from .history import History
from .metrics import NodeMetrics
from .sequencer import Sequencer
from .sequencing import AppliedEntry, ExchangeStateMachine, ExecutionEngine
from .service import OperatorService, ReceiptRecord
from .views import ExchangeView


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


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
        operator_key: bytes,
        engine: ExecutionEngine,
        view: ExchangeView,
        history_path: Path | str | None,
        leader_urls: dict[int, str] | None = None,
        admission_limits: AdmissionLimits = AdmissionLimits(),
        now_ms: Callable[[], int] = wall_clock_ms,
        checkpoint_status: Callable[[], dict] | None = None,
    ) -> None:
        self.node_id = node_id
        self.domain = domain
        self.engine = engine
        self.view = view
        self.metrics = NodeMetrics()
        self.history = History(history_path) if history_path is not None else None
        self.feeds = FeedHub(self.history)
        self.machine = ExchangeStateMachine(domain, engine)
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
            admission=Admission(domain, now_ms, admission_limits),
            leader_urls=leader_urls,
            lookup_receipt=lookup,
        )
        self.service.listeners.append(self._on_applied)
        self.service.restore_listeners.append(lambda: self.feeds.restart_at(self.engine.last_ordinal()))
        self.service.observers.append(self.metrics.observe_submission)
        self.service.apply_observer = self.metrics.apply_time.observe
        self.metrics.on_refresh(self._refresh_metrics)
        self._checkpoint_status = checkpoint_status
        self.started_ms = now_ms()

    @property
    def sequencer(self) -> Sequencer:
        return self.service.sequencer

    def attach(self, sequencer: Sequencer) -> None:
        self.service.sequencer = sequencer

    def _on_applied(self, applied: AppliedEntry) -> None:
        self.metrics.observe_applied(applied.status, len(applied.updates))
        if self.history is not None:
            self.history.record(applied)
        self.feeds.publish(applied)

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
        checkpoint = self.checkpoint_status()
        if checkpoint.get("lastRecordedEpoch") is not None:
            m.checkpoint_lag.set(self.engine.epoch() - checkpoint["lastRecordedEpoch"])
        if self.history is not None:
            m.history_backlog.set(self.history.enqueued - self.history.written)

    def set_checkpoint_status(self, provider: Callable[[], dict]) -> None:
        """The checkpointer reports here (docs/checkpoints.md); /v1/status shows it beside, never inside, `raft`.
        Keys it may set: state, lastBuiltEpoch, lastSignedEpoch, signatures, lastSubmittedEpoch, txHash,
        lastRecordedEpoch (drives ddx_checkpoint_lag_epochs), lastFinalEpoch, error."""
        self._checkpoint_status = provider

    def checkpoint_status(self) -> dict:
        if self._checkpoint_status is None:
            return {"state": "not_configured"}
        return self._checkpoint_status()

    def status(self) -> dict:
        return {
            "node": {"id": self.node_id, "operator": "0x" + self.service.operator_address.hex()},
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
            },
        }

    def readiness(self) -> tuple[bool, str]:
        if self.sequencer.leader_id() is None:
            return False, "no known leader"
        applied, commit = self.sequencer.applied_index(), self.sequencer.commit_index()
        if applied < commit:
            return False, f"applied {applied} of commit {commit}"
        return True, "leader known and applied up to the commit index"

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
