"""Prometheus metrics of one operator (its own registry, so several nodes can live in one test process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ddx_requests_total", "Trader requests by outcome (receipt or refusal reason)", ["outcome"], registry=r)
        self.receipt_latency = Histogram(
            "ddx_time_to_receipt_seconds", "From request arrival to receipt", buckets=LATENCY_BUCKETS, registry=r
        )
        self.applied = Counter("ddx_applied_entries_total", "Entries applied by the state machine, by status", ["status"], registry=r)
        self.apply_time = Histogram("ddx_apply_seconds", "Time to apply one committed entry", buckets=LATENCY_BUCKETS, registry=r)
        self.updates = Counter("ddx_execution_updates_total", "Execution updates emitted", registry=r)
        self.raft_term = Gauge("ddx_raft_term", "Current Raft term", registry=r)
        self.raft_commit = Gauge("ddx_raft_commit_index", "Raft commit index", registry=r)
        self.raft_applied = Gauge("ddx_raft_applied_index", "Raft index applied to the state machine", registry=r)
        self.raft_last = Gauge("ddx_raft_last_log_index", "Last Raft log index", registry=r)
        self.raft_is_leader = Gauge("ddx_raft_is_leader", "1 if this node is the Raft leader", registry=r)
        self.fsyncs = Gauge("ddx_raft_fsyncs", "Log fsyncs (batches) since start", registry=r)
        self.fsync_seconds = Gauge(
            "ddx_raft_fsync_seconds_total", "Time spent in log fsyncs since start (when the runtime reports it)", registry=r
        )
        self.entries_persisted = Gauge("ddx_raft_entries_persisted", "Log entries made durable since start", registry=r)
        self.engine_epoch = Gauge("ddx_engine_epoch", "Engine epoch", registry=r)
        self.checkpoint_lag = Gauge(
            "ddx_checkpoint_lag_epochs", "Engine epoch minus the last checkpoint recorded on-chain", registry=r
        )
        self.history_backlog = Gauge("ddx_history_backlog_entries", "Applied entries not yet written to history", registry=r)
        self.history_gaps = Gauge(
            "ddx_history_missing_requests", "Request indexes below the persisted top that history lacks (being repaired)",
            registry=r,
        )
        self.rate_limited = Counter(
            "ddx_rate_limited_total", "Requests refused by a rate limit, by bucket (trader, ip, connection, read)", ["bucket"],
            registry=r,
        )
        self.ws_subscribers = Gauge("ddx_ws_subscribers", "Open WebSocket subscriptions", registry=r)
        self.cancel_on_disconnect = Counter(
            "ddx_cancel_on_disconnect_total",
            "Request-channel cancel-on-disconnect events (armed, refreshed, refused, disarmed, fired, failed, dropped)",
            ["event"], registry=r,
        )
        self.cancel_on_disconnect_held = Gauge(
            "ddx_cancel_on_disconnect_held", "Request-channel connections holding a ScheduleCancel to submit when they end",
            registry=r,
        )
        self._receipts = self.requests.labels("receipt")
        self._applied_by_status: dict[str, Counter] = {}
        self._refreshers: list[Callable[[], None]] = []

    def on_refresh(self, refresh: Callable[[], None]) -> None:
        """Gauges read from live state are refreshed at scrape time, not on the hot path."""
        self._refreshers.append(refresh)

    def observe_submission(self, outcome: str, seconds: float) -> None:
        if outcome == "receipt":  # the per-request path: the labelled child is bound once, not looked up
            self._receipts.inc()
            self.receipt_latency.observe(seconds)
        else:
            self.requests.labels(outcome).inc()

    def observe_applied(self, status: str, updates: int) -> None:
        """Per applied entry, on every node: labelled children are looked up once per status (labels() costs
        more than the increment)."""
        child = self._applied_by_status.get(status)
        if child is None:
            child = self._applied_by_status[status] = self.applied.labels(status)
        child.inc()
        if updates:
            self.updates.inc(updates)

    def render(self) -> bytes:
        for refresh in self._refreshers:
            refresh()
        return generate_latest(self.registry)
