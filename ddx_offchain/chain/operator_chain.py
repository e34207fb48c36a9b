"""The chain side of one operator node: watcher + epoch scheduler (while leader), verifier + checkpointer (always).

The node gives it: its `OperatorService` (to sequence operator commands with `propose_operator_command` and to learn
whether it leads), a function returning the live `Engine` (cursors for resuming the watcher; the L1 block an epoch
anchors), this operator's key, and a `ChainRpc`. The node then:

- appends `on_applied` to `service.listeners`, so every applied chain block and epoch reaches the verifier and the
  checkpointer on every operator;
- serves `status()` as the `checkpoint` section of /v1/status and mounts `signatures.signature_routes(exchange)`
  when signatures travel over HTTP;
- runs `start()` / `stop()` with the node.

Sequencing never waits for any of this: the watcher proposes like any client, the checkpointer only reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from ..engine.commands import AdvanceEpoch, AdvanceTime, ChainBlock, IndexPrices, decode_command, encode_command
from ..engine.engine import Engine
from ..engine.errors import CommandDecodeError
from ..engine.reasons import Reject
from ..engine.updates import Accepted, EpochFrozen, Rejected, Update
from ..errors import DdxError
from ..node.state_machine import AppliedEntry
from ..node.tasks import cancel_and_wait
from ..node.wallclock import wall_clock_ms
from ..protocol import operator_messages as om
from ..protocol.hashing import keccak256
from ..protocol.inbox import InboxCursor
from ..protocol.requests import ENTRY_OPERATOR_COMMAND
from .checkpointer import Checkpointer, CheckpointerConfig
from .core.blocks import ConfirmedBlock, SequencedBlock
from .core.clock import ClockLedger, SequencedTime
from .core.follower import FollowerConfig
from .inbox_report import InboxReport, inbox_report
from .price_feed import PriceFeed, build_price_feed
from .rpc import ChainRpc
from .signatures import SignatureExchange
from .verifier import BlockVerifier
from .watcher import ChainWatcher, HandoffFailed, ResumePoint

log = logging.getLogger("ddx.chain.operator")


@dataclass(frozen=True)
class ChainSettings:
    deployment_block: int
    follower: FollowerConfig = field(default_factory=FollowerConfig)
    checkpointer: CheckpointerConfig = field(default_factory=CheckpointerConfig)
    poll_interval_s: float = 2.0
    epoch_interval_s: float | None = 60.0  # None: this cluster advances epochs by other means
    # The next epoch also waits (up to this long) for the previous one to be recorded on-chain, so epochs are not
    # frozen faster than the chain records them (each would only supersede the last) and the latest frozen epoch
    # is, most of the time, a recorded one that withdrawals can be claimed against.
    epoch_max_wait_s: float = 600.0
    # The leader sequences AdvanceTime(its clock) this often (None: never; funding and the engine's other clock
    # rules then stand still). Operators refuse a sequenced time further ahead of their own clock than the tolerance.
    time_interval_s: float | None = 1.0
    time_tolerance_ms: int = 10_000

    @classmethod
    def embedded(cls, deployment_block: int, epoch_interval_s: float = 5.0) -> "ChainSettings":
        """The devnet: no confirmations, fast polling, short epochs, relaying soon after a quorum."""
        return cls(
            deployment_block=deployment_block,
            follower=FollowerConfig(confirmations=0, anchor_interval=1),
            checkpointer=CheckpointerConfig(
                confirmations=1, relay_timeout_s=3.0, resubmit_after_s=10.0, stall_after_s=15.0, tick_s=0.25,
                search_from_block=deployment_block,
            ),
            poll_interval_s=0.25,
            epoch_interval_s=epoch_interval_s,
            epoch_max_wait_s=max(30.0, 10 * epoch_interval_s),
        )


class EpochSink(Protocol):
    """What becomes of a frozen epoch: a checkpoint to build (Checkpointer) or one to audit (replica/watch.py)."""

    def epoch_frozen(
        self, epoch: int, state_root: bytes, l1_block_number: int, l1_block_hash: bytes, inbox: InboxCursor
    ) -> object: ...


class ChainHooks:
    """Where the apply loop meets the chain side, on every operator (and replica): an accepted chain block goes to
    the verifier's ledger; a frozen epoch goes to `checkpointer` (a checkpoint to build on an operator, an epoch to
    audit on a replica), anchored at the last L1 block the engine sequenced, with the inbox cursor it took."""

    def __init__(
        self,
        verifier: BlockVerifier,
        checkpointer: EpochSink | None,
        prices: PriceFeed | None = None,
        commit_index: Callable[[], int] = lambda: 0,
        clock: ClockLedger | None = None,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.verifier = verifier
        self.checkpointer = checkpointer
        self.prices = prices
        self.commit_index = commit_index
        self.clock = clock
        self.wall_ms = wall_ms

    def on_applied(self, applied: AppliedEntry, engine: Engine) -> None:
        """A `service.listeners` callback body: each applied operator command reaches `applied` below."""
        entry = applied.entry
        if not entry or entry[0] != ENTRY_OPERATOR_COMMAND or not applied.updates:
            return
        try:
            command = decode_command(entry[1:])
        except CommandDecodeError:
            return  # the state machine refused it: nothing was applied
        updates = [u.update for u in applied.updates]
        if isinstance(updates[0], Accepted):
            if isinstance(command, IndexPrices) and self.prices is not None:
                self.prices.applied(command, engine.epoch, applied.log_index, self.commit_index())
            elif isinstance(command, AdvanceTime) and self.clock is not None:
                self.clock.record(SequencedTime(engine.epoch, command.time_ms, self.wall_ms()))
        self.applied(command, updates, (engine.block_number, engine.block_hash), engine.inbox_cursor())

    def applied(
        self, command: object, updates: Sequence[Update], engine_block: tuple[int, bytes], inbox: InboxCursor
    ) -> None:
        """`command` was applied with these `updates`; `engine_block` is the engine's (number, hash) cursor after,
        `inbox` its inbox cursor."""
        if not updates or not isinstance(updates[0], Accepted):
            return  # a rejected command changed nothing
        if isinstance(command, ChainBlock):
            self.verifier.record(SequencedBlock.from_command(command))
        elif isinstance(command, AdvanceEpoch) and self.checkpointer is not None:
            for update in updates:
                if isinstance(update, EpochFrozen):
                    self.checkpointer.epoch_frozen(update.epoch, update.root, *engine_block, inbox)


def chain_blocks_from_history(history, below: int, after: int) -> list[SequencedBlock] | None:
    """The accepted chain blocks after L1 block `after` in the node's history (node/history.py) below request
    index `below`; None while history lacks any of those requests (the backfill is still filling them)."""
    if history is None or history.missing_requests(below - 1):
        return None
    blocks = []
    for _, entry in history.accepted_operator_commands(below):
        try:
            command = decode_command(entry[1:])
        except CommandDecodeError:
            continue
        if isinstance(command, ChainBlock) and command.block_number > after:
            blocks.append(SequencedBlock.from_command(command))
    return blocks


def epoch_request_id(epoch: int) -> bytes:
    """The AdvanceEpoch request id: the same epoch is the same command on every leader."""
    return keccak256(b"ddx advance epoch" + epoch.to_bytes(32, "big"))


class OperatorChain:
    def __init__(
        self,
        settings: ChainSettings,
        *,
        rpc: ChainRpc,
        service,
        engine: Callable[[], Engine],
        operator_key: bytes,
        domain: om.Domain,
        operator_set: om.OperatorSet,
        exchange: SignatureExchange,
        clock: Callable[[], float] = time.monotonic,
        prices: PriceFeed | None = None,
        ledger_path: Path | None = None,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        """`ledger_path`: where the verifier keeps the blocks not yet under a final checkpoint across restarts;
        `wall_ms`: this operator's clock (the time it sequences while it leads, and checks the sequenced time by)."""
        self.settings = settings
        self.wall_ms = wall_ms
        self.clock_ledger = ClockLedger(settings.time_tolerance_ms)
        self._last_time_at: float | None = None
        self.prices = prices
        self.rpc = rpc
        self.service = service
        self._engine = engine
        self.clock = clock
        self.verifier = BlockVerifier(rpc, confirmations=settings.follower.confirmations, ledger_path=ledger_path)
        self.checkpointer = Checkpointer(
            rpc=rpc,
            domain=domain,
            operator_key=operator_key,
            operator_set=operator_set,
            verifier=self.verifier,
            exchange=exchange,
            config=settings.checkpointer,
            clock=clock,
            prices=prices,
            sequenced_time=self.clock_ledger,
        )
        self.watcher = ChainWatcher(
            rpc,
            settings.follower,
            resume=self._resume_point,
            handoff=self._handoff,
        )
        self.hooks = ChainHooks(self.verifier, self.checkpointer, prices, lambda: self.service.sequencer.commit_index(),
                                self.clock_ledger, wall_ms)
        self._was_leader = False
        self.history = None  # the node's History, once attached: read back what a snapshot skipped
        self._last_epoch_at: float | None = None
        self._tasks: list[asyncio.Task] = []
        self.epochs_proposed = 0

    # ---- from the node's apply loop (every operator) -------------------------------------------------------

    def on_applied(self, applied: AppliedEntry) -> None:
        """`service.listeners` callback: hands each applied operator command to the chain hooks."""
        self.hooks.on_applied(applied, self._engine())

    def on_restore(self) -> None:
        """`service.restore_listeners` callback: the state jumped to a snapshot; blocks sequenced in entries this node
        skipped are read back from its history before it signs (BlockVerifier.snapshot_installed)."""
        self.verifier.snapshot_installed(self._engine().block_number, self.service.machine.next_request_index,
                                         lambda below, after: chain_blocks_from_history(self.history, below, after))

    # ---- leader duties -------------------------------------------------------------------------------------

    def _resume_point(self) -> ResumePoint:
        e = self._engine()
        return ResumePoint.from_engine(e.block_number, e.block_hash, e.inbox_cursor(), self.settings.deployment_block)

    async def _handoff(self, block: ConfirmedBlock) -> None:
        applied = await self.service.propose_operator_command(encode_command(block.command()))
        first = applied.updates[0].update if applied.updates else None
        if first is None or isinstance(first, Accepted):
            return
        if isinstance(first, Rejected) and first.reason == Reject.BLOCK_NOT_NEWER:
            return  # already sequenced (a previous leader, or a retry): harmless
        detail = first.detail if isinstance(first, Rejected) else type(first).__name__
        raise HandoffFailed(f"block {block.number} rejected by the engine: {detail}")

    async def _lead_once(self) -> None:
        leader = self.service.sequencer.is_leader()
        if leader and not self._was_leader:
            self.watcher.restart()  # resume from what the log has, not from what this node saw as a follower
            self._last_epoch_at = self.clock()
        self._was_leader = leader
        if not leader:
            return
        try:
            await self.watcher.poll_once()
            self.watcher.health.succeeded()
        except HandoffFailed as exc:
            log.warning("chain block not sequenced: %s", exc)
        except Exception as exc:
            self.watcher.health.failed(exc)
            log.warning("chain watcher: %s", exc)
        await self._maybe_advance_time()
        await self._maybe_advance_epoch()

    async def _maybe_advance_time(self) -> None:
        interval = self.settings.time_interval_s
        if interval is None or (self._last_time_at is not None and self.clock() - self._last_time_at < interval):
            return
        now = self.wall_ms()
        if now <= self._engine().time:
            return  # the engine is already there (another leader's clock ran ahead a little)
        try:
            await self.service.propose_operator_command(
                encode_command(AdvanceTime(keccak256(b"ddx advance time" + now.to_bytes(8, "big")), now))
            )
        except Exception as exc:
            log.warning("time %d not sequenced: %s", now, exc)
            return
        self._last_time_at = self.clock()

    async def _maybe_advance_epoch(self) -> None:
        interval = self.settings.epoch_interval_s
        if interval is None or self._last_epoch_at is None or self.clock() - self._last_epoch_at < interval:
            return
        engine = self._engine()
        if engine.block_number == 0:
            return  # an epoch must anchor a sequenced L1 block (the contract checks its hash)
        if engine.epoch > 0 and not self._previous_epoch_settled(engine.epoch):
            return
        epoch = engine.epoch + 1
        try:
            await self.service.propose_operator_command(encode_command(AdvanceEpoch(epoch_request_id(epoch), epoch)))
            self.epochs_proposed += 1
        except Exception as exc:
            log.warning("epoch %d not sequenced: %s", epoch, exc)
            return
        self._last_epoch_at = self.clock()

    def _previous_epoch_settled(self, epoch: int) -> bool:
        """Recorded (or final, superseded), refused or in conflict here, or waiting longer than epoch_max_wait_s."""
        cp = self.checkpointer.progress.epochs.get(epoch)
        if cp is None:
            return True  # not built here (restarted from a snapshot): nothing to wait for
        if cp.stage.value in ("recorded", "final", "superseded", "refused", "conflict"):
            return True
        return self.clock() - cp.built_at >= self.settings.epoch_max_wait_s

    async def _lead_loop(self) -> None:
        while True:
            await self._lead_once()
            delay = self.settings.poll_interval_s
            if self.watcher.health.consecutive_failures:
                delay = max(delay, self.watcher.backoff.delay(self.watcher.health.consecutive_failures))
            await asyncio.sleep(delay)

    async def _price_loop(self) -> None:
        """Every operator polls its price sources (its own series is what it verifies with); the leader also
        sequences the prices that are due."""
        while True:
            try:
                await self.prices.poll_once()
                if self.service.sequencer.is_leader():
                    await self.prices.lead_once(self.service.propose_operator_command)
            except Exception as exc:  # a source bug must not stop the loop; sources report their own errors
                log.warning("index prices: %s", exc)
            await asyncio.sleep(self.prices.poll_interval_s)

    def attach(self, *, metrics=None, history=None) -> None:
        """Publish into the node's Prometheus registry (`NodeMetrics`) and record each checkpoint stage change in
        its history (`History.record_checkpoint`, served by GET /v1/checkpoints)."""
        if metrics is not None:
            from .chain_metrics import ChainMetrics

            chain_metrics = ChainMetrics(metrics.registry)
            metrics.on_refresh(lambda: chain_metrics.refresh(self.watcher if self._was_leader else None, self.checkpointer))
        self.history = history
        if history is not None:
            self.checkpointer.stage_listeners.append(history.record_checkpoint)

    # ---- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._lead_loop()), loop.create_task(self.checkpointer.run())]
        if self.prices is not None:
            self._tasks.append(loop.create_task(self._price_loop()))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self.prices is not None:
            await self.prices.close()
        close = getattr(self.rpc, "close", None)
        if close is not None:
            await close()

    async def inbox(self, trader: bytes | None = None) -> InboxReport:
        """GET /v1/inbox: the contract's inbox and deadline beside the engine's cursor, and pending forced requests."""
        engine = self._engine()
        return await inbox_report(self.rpc, engine.inbox_cursor(), engine.block_number, trader)

    def last_recorded_epoch(self) -> int | None:
        return self.checkpointer.progress.last_recorded()

    def status(self) -> dict:
        return self.checkpointer.status() | {
            "watcher": self.watcher.status() if self._was_leader else {"state": "follower"},
            "epochsProposed": self.epochs_proposed,
            "time": self.clock_ledger.status(),
        }


LOCAL_CHAIN_IDS = {31337, 1337}  # anvil, hardhat, ganache: dev chains with instant blocks


class ChainSetupError(DdxError, ValueError):
    """The node's [chain] settings do not describe a usable deployment (the message says which)."""


def settings_for(chain_id: int, deployment_block: int, *, confirmations: int | None = None,
                 epoch_interval_s: float | None = None) -> ChainSettings:
    """Defaults by network: 6 confirmations and minute epochs on public chains; 1 and 5 s on local dev chains.
    `confirmations` and `epoch_interval_s` (the node's chain.confirmations / chain.epoch_interval_ms) override
    them; a checkpoint is final after max(1, confirmations) blocks."""
    if chain_id in LOCAL_CHAIN_IDS:
        local = ChainSettings.embedded(deployment_block, epoch_interval_s=5.0)
        base = ChainSettings(
            deployment_block=deployment_block,
            follower=FollowerConfig(confirmations=1, anchor_interval=1),
            checkpointer=local.checkpointer,
            poll_interval_s=0.5,
            epoch_interval_s=5.0,
            epoch_max_wait_s=local.epoch_max_wait_s,
        )
    else:
        base = ChainSettings(
            deployment_block=deployment_block,
            checkpointer=CheckpointerConfig(search_from_block=deployment_block),
        )
    return with_overrides(base, confirmations=confirmations, epoch_interval_s=epoch_interval_s)


def with_overrides(settings: ChainSettings, *, confirmations: int | None = None,
                   epoch_interval_s: float | None = None) -> ChainSettings:
    """`settings` with an operator's confirmation depth and epoch interval (None keeps the value there)."""
    from dataclasses import replace

    if confirmations is not None:
        settings = replace(
            settings,
            follower=replace(settings.follower, confirmations=confirmations),
            checkpointer=replace(settings.checkpointer, confirmations=max(1, confirmations)),
        )
    if epoch_interval_s is not None:
        settings = replace(settings, epoch_interval_s=epoch_interval_s,
                           epoch_max_wait_s=max(settings.epoch_max_wait_s, 10 * epoch_interval_s))
    return settings


async def build_operator_chain(node_settings, service, engine: Callable[[], Engine], operator_key: bytes,
                               settings: ChainSettings | None = None) -> tuple[OperatorChain, object] | None:
    """The chain side of `ddx node`, from its [chain] settings (`rpc`, `manifest`); None when `rpc` is unset.

    Returns (chain, signature exchange). The node then appends `chain.on_applied` to its service listeners, calls
    `chain.attach(metrics=…, history=…)`, serves `chain.status` as its checkpoint status, mounts
    `signatures.signature_routes(exchange)` in its API, and starts/stops `chain` with itself.
    """
    from ..deployment.artifacts import shipped_abi
    from ..deployment.manifest import ManifestError, load_manifest
    from .rpc import Web3ChainRpc, http_web3
    from .signatures import HttpSignatureExchange

    if not node_settings.rpc:
        return None
    if node_settings.manifest is None:
        raise ChainSetupError("chain.manifest: needed with chain.rpc (deployment block, operator set)")
    try:
        manifest = load_manifest(node_settings.manifest)
    except ManifestError as exc:
        raise ChainSetupError(f"chain.manifest: {exc}") from None
    domain = node_settings.domain
    if manifest.chain_id != domain.chain_id or manifest.exchange.lower() != "0x" + domain.verifying_contract.hex():
        raise ChainSetupError(
            f"chain.manifest is for exchange {manifest.exchange} on chain {manifest.chain_id}, the node is configured for "
            f"0x{domain.verifying_contract.hex()} on chain {domain.chain_id}"
        )
    rpc = Web3ChainRpc(http_web3(node_settings.rpc), manifest.exchange, shipped_abi("Exchange"))
    try:
        operator_set = await rpc.operator_set()  # the current set (a rotation after deployment is picked up)
    except Exception as exc:
        await rpc.close()
        raise ChainSetupError(f"chain.rpc: cannot read the operator set from {node_settings.rpc}: {exc}") from None
    exchange = HttpSignatureExchange([p.api_url for p in node_settings.peers if p.api_url])
    prices = None
    if node_settings.prices is not None:
        prices = build_price_feed(node_settings.prices, w3=rpc.w3, session=aiohttp.ClientSession())
    chain = OperatorChain(
        settings or settings_for(
            manifest.chain_id, manifest.deployment_block,
            confirmations=node_settings.chain_confirmations, epoch_interval_s=node_settings.chain_epoch_interval_seconds,
        ),
        rpc=rpc,
        service=service,
        engine=engine,
        operator_key=operator_key,
        domain=om.Domain(manifest.chain_id, manifest.exchange),
        operator_set=operator_set,
        exchange=exchange,
        prices=prices,
        ledger_path=verifier_ledger_path(node_settings.data_dir),
    )
    return chain, exchange


def verifier_ledger_path(data_dir: Path) -> Path:
    """Where an operator keeps its verifier ledger (beside its Raft data)."""
    return Path(data_dir) / "chain" / "verifier-ledger.msgpack"
