"""Prometheus metrics of the chain side (watcher, verifier, checkpointer), in the node's registry.

Gauges are read from the components' live state at scrape time (`refresh`), never on the hot path; the node
registers `refresh` with `NodeMetrics.on_refresh`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from .checkpointer import Checkpointer
from .core.follower import AlarmKind
from .core.progress import Stage
from .watcher import ChainWatcher

STAGE_CODES = {stage: i for i, stage in enumerate(Stage)}  # documented in docs/checkpoints.md


class _CountSinceStart:
    """A Prometheus counter mirroring a component's own running count (read at scrape time, never reset)."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.counter = Counter(name, documentation, registry=registry)
        self.seen = 0

    def follow(self, total: int) -> None:
        self.counter.inc(total - self.seen)
        self.seen = total


class ChainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.halted = Gauge("ddx_chain_ingestion_halted", "1 if deposit ingestion stopped on an alarm", registry=r)
        self.alarm = Gauge("ddx_chain_alarm", "Active chain alarms by kind (deposit_gap, deposit_repeated, forced_gap, forced_repeated, inbox_mismatch, sequenced_block_reorged)", ["kind"], registry=r)
        self.head = Gauge("ddx_chain_head_block", "Latest block number seen by the watcher", registry=r)
        self.handed = Gauge("ddx_chain_last_handed_block", "Last confirmed block handed to the leader", registry=r)
        self.reorgs = Gauge("ddx_chain_reorgs", "Reorganisations seen by the watcher", registry=r)
        self.rpc_failures = Gauge("ddx_chain_rpc_failures", "RPC failures so far, by component", ["component"], registry=r)
        self.rpc_down = Gauge("ddx_chain_rpc_consecutive_failures", "RPC failures in a row, by component", ["component"], registry=r)
        self.mismatches = Gauge("ddx_chain_block_mismatches", "Sequenced chain blocks contradicting this operator's RPC", registry=r)
        self.epoch_stage = Gauge("ddx_checkpoint_stage", "Stage of the newest checkpoint (see docs/checkpoints.md)", registry=r)
        self.signatures = Gauge("ddx_checkpoint_signatures", "Signatures collected for the newest open checkpoint", registry=r)
        self.last_recorded = Gauge("ddx_checkpoint_last_recorded_epoch", "Newest epoch recorded on-chain", registry=r)
        self.last_final = Gauge("ddx_checkpoint_last_final_epoch", "Newest epoch final on-chain", registry=r)
        self.relay_failures = Gauge("ddx_checkpoint_relay_failures", "Failed relay attempts of open checkpoints", registry=r)
        # The gauge above drops to 0 when an epoch is superseded; this counter never does, so a relay that has
        # never worked shows as a steadily rising rate (alert on rate(...) > 0 with no recorded epoch).
        self.relay_failures_total = _CountSinceStart(
            "ddx_checkpoint_relay_attempts_failed", "Failed relay attempts since start (all epochs)", r
        )
        self.refusals = Gauge("ddx_checkpoint_refused_epochs", "Epochs this operator refuses to sign", registry=r)
        self.inbox_mismatches = _CountSinceStart(
            "ddx_checkpoint_inbox_mismatches",
            "Checkpoints refused because the state's inbox cursor differs from the contract's at the anchor block", r,
        )
        self.price_refusals = _CountSinceStart(
            "ddx_checkpoint_price_refusals",
            "Checkpoints refused because a sequenced index price contradicts this operator's own price sources", r,
        )
        self.time_refusals = _CountSinceStart(
            "ddx_checkpoint_time_refusals",
            "Checkpoints refused because a sequenced time runs ahead of this operator's clock", r,
        )
        self.prices_unverified = Gauge(
            "ddx_index_prices_unverified",
            "Sequenced index prices this operator could not check (its sources gave nothing at that moment)",
            registry=r,
        )

    def refresh(self, watcher: ChainWatcher | None, checkpointer: Checkpointer | None) -> None:
        if watcher is not None:
            status = watcher.status()
            self.halted.set(1 if status.get("state") == "halted" else 0)
            alarm = status.get("alarm")
            for kind in AlarmKind:
                self.alarm.labels(kind.value).set(1 if alarm and alarm["kind"] == kind.value else 0)
            if status.get("head") is not None:
                self.head.set(status["head"])
            if status.get("lastHanded") is not None:
                self.handed.set(status["lastHanded"])
            self.reorgs.set(status.get("reorgs", 0))
            self.rpc_failures.labels("watcher").set(watcher.health.total_failures)
            self.rpc_down.labels("watcher").set(watcher.health.consecutive_failures)
        if checkpointer is not None:
            progress = checkpointer.progress
            self.rpc_failures.labels("checkpointer").set(checkpointer.health.total_failures)
            self.rpc_down.labels("checkpointer").set(checkpointer.health.consecutive_failures)
            self.rpc_failures.labels("verifier").set(checkpointer.verifier.health.total_failures)
            self.mismatches.set(len(checkpointer.verifier.blocks.mismatches()))
            if progress.epochs:
                newest = progress.epochs[max(progress.epochs)]
                self.epoch_stage.set(STAGE_CODES[newest.stage])
                self.signatures.set(len(newest.signatures))
            self.last_recorded.set(progress.last_recorded() or 0)
            finals = [e for e, cp in progress.epochs.items() if cp.stage is Stage.FINAL]
            self.last_final.set(max(finals, default=0))
            self.relay_failures.set(sum(cp.failures for cp in progress.open_epochs()))
            self.relay_failures_total.follow(progress.relay_failures_total)
            self.refusals.set(sum(1 for cp in progress.epochs.values() if cp.stage is Stage.REFUSED))
            self.inbox_mismatches.follow(checkpointer.inbox_mismatches)
            self.price_refusals.follow(checkpointer.price_refusals)
            self.time_refusals.follow(checkpointer.time_refusals)
            if checkpointer.prices is not None:
                self.prices_unverified.set(checkpointer.prices.ledger.unverified)
