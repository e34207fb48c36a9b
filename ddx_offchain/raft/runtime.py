"""The asyncio driver of one Raft node: clock, disk, network and state machine around the pure RawNode.

Public API (what the operator node builds on)::

    node = RaftNode(config, state_machine)        # state_machine implements fsm.StateMachine
    await node.start()
    applied = await node.propose(b"...", client_id=b"c1", sequence=7)   # -> fsm.Applied(index, result)
    node.status()                                  # NodeStatus: role, term, leader, commit, applied, ...
    await node.read_index()                        # linearizable read barrier: returns once applied >= it
    await node.add_voter(4) / add_learner(4) / remove_node(4) / transfer_leadership(2)
    node.on_applied(callback)                      # hook: called with each applied run of commands
    await node.shutdown()

The loop (one task, `_drive`) follows RawNode's contract, with one Ready in flight at a time:

1. step every received message, propose every queued request as one batch, tick for elapsed clock ticks;
2. take a Ready; its log frame (entries + hard state, snapshot mark) goes to the disk thread: one write, one
   fdatasync. Meanwhile the loop keeps stepping messages and queueing proposals, which become the next batch:
   the next flush starts the moment this fsync returns, never on a timer;
3. once durable: make it visible to the core's reads, send the Ready's messages (persist-before-send), restore
   a received snapshot, apply committed entries (resolving proposers' futures), serve read states, advance.

A proposal's future resolves when its entry is committed on a quorum, durably, and applied here: that is the
moment a receipt may be issued.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.driver import ReadyDriver
from ddx_offchain.raft.fsm import (
    MAX_CLIENT_ID_BYTES,
    NO_CLIENT,
    Applied,
    Command,
    Envelope,
    SessionStateMachine,
    StateMachine,
    decode_envelope,
    encode_envelope,
)
from ddx_offchain.raft.logstore import DiskStorage
from ddx_offchain.raft.messages import (
    NO_NODE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    StateRole,
    decode_conf_change,
)
from ddx_offchain.raft.ports import PeerTransport, TransportFactory
from ddx_offchain.raft.rawnode import ProposalDroppedError, RawNode, Ready, StepError
from ddx_offchain.raft.transport import TlsMaterial, Transport, TransportConfig, TransportHandler

from ..errors import DdxError

log = logging.getLogger("ddx.raft.runtime")

_BUCKET_SECONDS = 0.1


class RaftError(DdxError):
    """Base class of the runtime's typed errors."""


class ProposalDroppedByRaftError(RaftError):
    """Raft refused the proposal outright (no leader, transfer in progress, back-pressure): it will not commit."""


class NotLeaderError(ProposalDroppedByRaftError):
    """Refused because no leader is known (an election is under way): it will not commit; retry shortly."""

    def __init__(self, message: str, leader: int = NO_NODE) -> None:
        super().__init__(message)
        self.leader = leader


class ProposalLostError(RaftError):
    """Another entry was committed where the proposal stood (leader change): it will never commit."""


class ProposalTimeoutError(RaftError):
    """The outcome is unknown: the entry may still commit. Retry with the same (client id, sequence)."""


class NodeStoppedError(RaftError):
    """The node is shutting down."""


class NodeNotStartedError(RaftError):
    """Asked for what only a started node has (its status)."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: int
    data_dir: Path
    listen: tuple[str, int]
    peers: dict[int, tuple[str, int]]  # every other operator: node id -> (host, port)
    tls: TlsMaterial
    # The founding voters of a brand-new cluster (every founder must list the same); on first start with an
    # empty data directory a founder writes them as the first log entries. Defaults to all configured operators.
    initial_voters: tuple[int, ...] = ()
    # A node added to a running cluster starts with an empty log and learns the membership from the leader
    # (after `add_learner` / `add_voter` on the cluster); it never bootstraps.
    join: bool = False
    tick_seconds: float = 0.05
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_batch_proposals: int = 1024  # proposals per Ready (one propose() call, one APPEND per follower)
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_uncommitted_bytes: int = 64 << 20  # back-pressure: the leader refuses proposals beyond this
    snapshot_interval: int = 50_000  # take a snapshot every this many applied entries (0 = never)
    snapshot_keep_entries: int = 5_000  # entries kept in memory after a snapshot for slow followers
    segment_bytes: int = 64 << 20
    # Per peer, messages / bytes received and not yet stepped; at the bound the transport stops reading that
    # peer's socket until the loop catches up (back-pressure, see docs/raft.md "Inbound back-pressure").
    max_inbox_messages: int = 16384
    max_inbox_bytes: int = 64 << 20
    # Run each log write + fsync on a disk thread, the loop stepping messages, applying and queueing the next
    # batch meanwhile. Inline (False) saves two thread hand-offs per Ready, which only pays when fsync takes a
    # small fraction of a millisecond; on a shared or cloud disk (milliseconds) the thread keeps the pipeline full.
    write_in_thread: bool = True
    # Adaptive: with write_in_thread, a Ready is still written inline while the recent log writes (an EWMA of
    # write + fdatasync, 1/8 weight for the newest) take less than this many seconds; 0 never writes inline.
    # Inline saves two thread hand-offs (CPU) but stalls the loop for the fsync; see docs/raft.md for when it pays.
    inline_write_below_seconds: float = 0.0
    proposal_timeout_seconds: float = 10.0
    seed: int = 0

    def voters(self) -> tuple[int, ...]:
        return self.initial_voters or tuple(sorted({self.node_id, *self.peers}))


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    match: int
    next: int
    state: str
    recent_active: bool


@dataclass(frozen=True, slots=True)
class NodeStatus:
    id: int
    role: str
    term: int
    leader: int
    commit_index: int
    applied_index: int
    last_log_index: int
    first_log_index: int
    snapshot_index: int
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    followers: dict[int, FollowerStatus]  # on the leader only
    connected_peers: tuple[int, ...]
    inbox_pauses: int = 0  # times a peer's socket was paused because its inbox was full (transport back-pressure)
    inbox_overflows: int = 0  # connections closed because a paused peer kept sending


@dataclass(slots=True)
class _Counters:
    readies: int = 0
    fsyncs: int = 0
    entries_persisted: int = 0
    proposals: int = 0
    applied: int = 0
    step_errors: int = 0
    proposal_batches: int = 0
    fsync_seconds: float = 0.0  # time spent in log writes + fdatasync (written by the one thread that writes)
    write_seconds_ewma: float = 0.0  # recent log write + fdatasync duration (1/8 weight for the newest)
    inline_writes: int = 0  # Readies written on the loop thread (write_in_thread false, or adaptive and fast disk)
    snapshot_capture_seconds: float = 0.0  # the last snapshot's time on the event loop (capture, not encoding)


class _DiskLog:
    """LogStore over DiskStorage: `persist` prepares the Ready's frame; the runtime writes and fsyncs it (inline or
    on the disk thread), makes it visible to the core's reads, then reports it durable to the driver."""

    def __init__(self, storage: DiskStorage) -> None:
        self.storage = storage
        self._pending = None

    def persist(self, ready: Ready) -> bool:
        pending = self.storage.prepare(ready.hard_state, ready.entries, ready.snapshot)
        if pending.batch is None:
            self.storage.apply_to_memory(pending)
            return True
        self._pending = pending
        return False

    def take_pending(self):
        pending, self._pending = self._pending, None
        return pending


class RaftNode:
    """The asyncio shell around one RawNode. Its I/O comes through ports: the log store (`open_storage`, default
    DiskStorage in `config.data_dir`), the peer transport (`make_transport`, default mutual-TLS TCP) and the
    application (`state_machine`); the Ready cycle itself is raft/driver.py's ReadyDriver, the same code the
    deterministic simulator runs, with this node as its ReadyHandler (send, on_soft_state, on_hard_state, restore,
    apply, on_read_states, after_advance)."""

    def __init__(
        self,
        config: NodeConfig,
        state_machine: StateMachine,
        *,
        open_storage: Callable[[NodeConfig], DiskStorage] | None = None,
        make_transport: TransportFactory | None = None,
    ) -> None:
        self.config = config
        self._open_storage = open_storage or (lambda c: DiskStorage(c.data_dir, segment_bytes=c.segment_bytes))
        self._make_transport = make_transport or Transport
        self.state = SessionStateMachine(state_machine)
        self.counters = _Counters()
        self._storage: DiskStorage | None = None
        self._node: RawNode | None = None
        self._log: _DiskLog | None = None
        self._driver: ReadyDriver | None = None
        self._transport: PeerTransport | None = None
        self._disk = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"raft-disk-{config.node_id}")
        # Snapshot files are written on their own thread: a large one takes seconds to write and fsync, and
        # behind it on the log thread every log write (so every Ready, heartbeats included) would wait.
        self._snapshot_disk = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"raft-snap-{config.node_id}"
        )
        self._snapshot_task: asyncio.Task | None = None
        # Batches of received messages (sender, messages), one per transport hand-over; each is reported back to
        # the transport once stepped, which is what bounds it (see NodeConfig.max_inbox_messages).
        self._inbox: collections.deque[tuple[int, list[Message]]] = collections.deque()
        # (entry payload, waiter id) of requests not yet handed to the core.
        self._proposals: collections.deque[tuple[bytes, int]] = collections.deque()
        self._control: collections.deque[Callable[[RawNode], None]] = collections.deque()
        self._waiters: dict[int, asyncio.Future] = {}  # waiter id -> the proposer's future
        # Requests with the default timeout go into 100 ms buckets (creation time, waiter ids): O(1) per request
        # and 8 bytes each; a request expires at most one bucket late. Requests with their own timeout use a heap.
        self._deadline_buckets: collections.deque[tuple[float, list[int]]] = collections.deque()
        self._other_deadlines: list[tuple[float, int]] = []
        # (log index, waiter id) of proposals this node appended as leader, in index order: when that index is
        # applied with another entry, the proposal is lost.
        self._by_index: collections.deque[tuple[int, int]] = collections.deque()
        self._conf_waiters: dict[int, asyncio.Future] = {}
        self._read_waiters: dict[bytes, asyncio.Future] = {}
        self._reads_ready: list[tuple[int, asyncio.Future]] = []
        self._leader_waiters: list[tuple[int, asyncio.Future]] = []
        # One future shared by everyone waiting for the next leader change, with the leader it was created under.
        self._next_change: tuple[int, asyncio.Future] | None = None
        self._ids = itertools.count(1)
        self._node_id = config.node_id
        self._bucket_open = False
        self._default_timeout = config.proposal_timeout_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._pending_ticks = 0
        self._in_flight = False
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._applied = 0
        self._commit = 0
        self._conf_state = ConfState()
        self._soft_role = StateRole.FOLLOWER
        self._leader = NO_NODE
        self._term = 0
        self._last_snapshot_index = 0
        self._snapshotting = False
        self._applied_hooks: list[Callable[[Sequence[Command], list], None]] = []
        self._fatal: BaseException | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        config = self.config
        storage = await self._on_disk(self._open_storage, config)
        if storage.is_empty() and not config.join:
            await self._on_disk(storage.bootstrap, config.voters())
        self._storage = storage
        snapshot = storage.snapshot()
        applied = snapshot.metadata.index
        if applied:
            self.state.restore(snapshot.data)
        self._applied = self._last_snapshot_index = applied
        self._conf_state = snapshot.metadata.conf_state
        raft_config = Config(
            id=config.node_id,
            election_tick=config.election_ticks,
            heartbeat_tick=config.heartbeat_ticks,
            applied=applied,
            max_size_per_msg=config.max_size_per_msg,
            max_inflight_msgs=config.max_inflight_msgs,
            max_uncommitted_entries_size=config.max_uncommitted_bytes,
            check_quorum=True,
            pre_vote=True,
            seed=config.seed or config.node_id * 7919 + int(time.time_ns() % 1_000_003),
        )
        self._node = RawNode(raft_config, storage)
        self._log = _DiskLog(storage)
        self._driver = ReadyDriver(self._node, self._log, self)
        self._commit = storage.hard_state().commit
        self._transport = self._make_transport(
            TransportConfig(
                node_id=config.node_id,
                listen_host=config.listen[0],
                listen_port=config.listen[1],
                peers=dict(config.peers),
                tls=config.tls,
                max_frame_bytes=max(16 << 20, 2 * config.max_size_per_msg),
                max_inbox_messages=config.max_inbox_messages,
                max_inbox_bytes=config.max_inbox_bytes,
            ),
            TransportHandler(
                on_messages=self._on_messages,
                on_unreachable=lambda peer: self._control.append(lambda n: n.report_unreachable(peer)) or self._wake.set(),
                on_snapshot_sent=lambda peer, ok: self._control.append(lambda n: n.report_snapshot(peer, ok)) or self._wake.set(),
            ),
        )
        await self._transport.start()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._tasks = [loop.create_task(self._drive(), name="raft-drive"), loop.create_task(self._tick(), name="raft-tick"),
                       loop.create_task(self._expire(), name="raft-expire")]

    @property
    def port(self) -> int:
        assert self._transport is not None
        return self._transport.port

    async def shutdown(self) -> None:
        """Stop ticking and sending, fail every waiter with NodeStoppedError, flush and close the log."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._in_flight:
            await asyncio.sleep(0.001)
        if self._snapshot_task is not None:
            # Let a snapshot being written finish (and its log release run) before the log is closed.
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        if self._transport is not None:
            await self._transport.close()
        error = NodeStoppedError("node stopped")
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        for future in [*self._conf_waiters.values(), *self._read_waiters.values(),
                       *(f for _, f in self._reads_ready), *(f for _, f in self._leader_waiters)]:
            if not future.done():
                future.set_exception(error)
        if self._next_change is not None and not self._next_change[1].done():
            # shared by waiters that may be gone: a result, not an exception nobody would retrieve
            self._next_change[1].set_result(NO_NODE)
        if self._storage is not None:
            await self._on_disk(self._storage.close)
        self._disk.shutdown(wait=True)
        self._snapshot_disk.shutdown(wait=True)

    # --- requests ------------------------------------------------------------------------------------------
    async def propose(
        self, payload: bytes, *, client_id: bytes = NO_CLIENT, sequence: int = 0, timeout: float | None = None
    ) -> Applied:
        """Replicate `payload`; returns once it is committed (fsync'd on a quorum) and applied here.

        With a client session (client_id, sequence), a retry of a request already applied returns the first
        application's index and result, and the state machine is not called again.
        Raises ProposalDroppedByRaftError / ProposalLostError (definitely not committed), ProposalTimeoutError
        (unknown: retry with the same session), NodeStoppedError.
        """
        return await self.submit(payload, client_id=client_id, sequence=sequence, timeout=timeout)

    def submit(
        self, payload: bytes, *, client_id: bytes = NO_CLIENT, sequence: int = 0, timeout: float | None = None
    ) -> asyncio.Future:
        """`propose` without the coroutine: returns the future at once (for servers that pipeline many requests
        and attach callbacks instead of awaiting each one)."""
        # This is the hot path of every request: plain tuples and no helper calls.
        if self._stopping or self._fatal is not None or self._node is None:
            self._check_running()
        if len(client_id) > MAX_CLIENT_ID_BYTES:
            raise ValueError(f"client_id is at most {MAX_CLIENT_ID_BYTES} bytes")
        waiter_id = next(self._ids)
        future = self._loop.create_future()
        self._waiters[waiter_id] = future
        if timeout is None:
            buckets = self._deadline_buckets
            if buckets and self._bucket_open:
                buckets[-1][1].append(waiter_id)
            else:
                buckets.append((time.monotonic(), [waiter_id]))
                self._bucket_open = True
        else:
            heapq.heappush(self._other_deadlines, (time.monotonic() + timeout, waiter_id))
        self._proposals.append(
            (encode_envelope(Envelope(self._node_id, waiter_id, client_id, sequence, payload)), waiter_id)
        )
        if not self._wake.is_set():
            self._wake.set()
        return future

    async def read_index(self, timeout: float | None = None) -> int:
        """Linearizable read barrier (Raft thesis §6.4): returns an index such that every write acknowledged
        before this call is applied locally; read the state machine after it returns."""
        self._check_running()
        context = next(self._ids).to_bytes(8, "big") + self.config.node_id.to_bytes(8, "big")
        future = asyncio.get_running_loop().create_future()
        self._read_waiters[context] = future
        self._control.append(lambda node: node.read_index(context))
        self._wake.set()
        try:
            return await asyncio.wait_for(future, timeout if timeout is not None else self.config.proposal_timeout_seconds)
        except asyncio.TimeoutError:
            raise ProposalTimeoutError("read index not confirmed in time (no leader, or partitioned)") from None
        finally:
            self._read_waiters.pop(context, None)

    async def add_voter(self, node_id: int, timeout: float | None = None) -> ConfState:
        return await self._change_membership(ConfChange(ConfChangeType.ADD_VOTER, node_id), timeout)

    async def add_learner(self, node_id: int, timeout: float | None = None) -> ConfState:
        return await self._change_membership(ConfChange(ConfChangeType.ADD_LEARNER, node_id), timeout)

    async def remove_node(self, node_id: int, timeout: float | None = None) -> ConfState:
        return await self._change_membership(ConfChange(ConfChangeType.REMOVE_NODE, node_id), timeout)

    async def transfer_leadership(self, to: int, timeout: float | None = None) -> None:
        """Hand leadership to `to` (which must be a caught-up voter); returns once this node sees it lead."""
        self._check_running()
        future = asyncio.get_running_loop().create_future()
        self._leader_waiters.append((to, future))
        self._control.append(lambda node: node.transfer_leadership(to))
        self._wake.set()
        try:
            await asyncio.wait_for(future, timeout if timeout is not None else self.config.proposal_timeout_seconds)
        except asyncio.TimeoutError:
            raise ProposalTimeoutError(f"leadership did not move to {to} in time") from None

    def is_leader(self) -> bool:
        """Whether this node leads now (no status object built: cheap enough for every proposal)."""
        return self._soft_role == StateRole.LEADER

    def leader_change(self) -> asyncio.Future:
        """A future resolved with the new leader id (NO_NODE while there is none) the next time this node sees
        the leader change. Shared by every caller until then (one per change, however many wait): never cancel
        it."""
        self._check_running()
        if self._next_change is None:
            self._next_change = (self._leader, self._loop.create_future())
        return self._next_change[1]

    def on_applied(self, hook: Callable[[Sequence[Command], list], None]) -> None:
        """Register `hook(commands, outcomes)`, called after each run of commands is applied (in log order)."""
        self._applied_hooks.append(hook)

    def status(self) -> NodeStatus:
        """NodeNotStartedError before start()."""
        if self._node is None or self._storage is None:
            raise NodeNotStartedError("the Raft node has not started")
        raw = self._node.status()
        followers = {
            peer: FollowerStatus(progress.match, progress.next, progress.state.name, progress.recent_active)
            for peer, progress in raw.progress.items()
            if peer != self.config.node_id
        }
        return NodeStatus(
            id=self.config.node_id,
            role=raw.soft_state.role.name,
            term=raw.hard_state.term,
            leader=raw.soft_state.leader,
            commit_index=raw.hard_state.commit,
            applied_index=self._applied,
            last_log_index=raw.last_index,
            first_log_index=self._storage.first_index(),
            snapshot_index=self._storage.snapshot().metadata.index,
            voters=raw.conf_state.voters,
            learners=raw.conf_state.learners,
            followers=followers,
            connected_peers=tuple(self._transport.connected_peers()) if self._transport else (),
            inbox_pauses=self._transport.stats.inbox_pauses if self._transport else 0,
            inbox_overflows=self._transport.stats.inbox_overflows if self._transport else 0,
        )

    # --- internals: inputs ----------------------------------------------------------------------------------
    def _check_running(self) -> None:
        if self._stopping or self._node is None:
            raise NodeStoppedError("node is not running")
        if self._fatal is not None:
            raise NodeStoppedError(f"node failed: {self._fatal!r}")

    def _on_messages(self, peer: int, messages: list[Message]) -> None:
        self._inbox.append((peer, messages))
        self._wake.set()

    async def _change_membership(self, change: ConfChange, timeout: float | None) -> ConfState:
        self._check_running()
        waiter_id = next(self._ids)
        context = self.config.node_id.to_bytes(8, "big") + waiter_id.to_bytes(8, "big")
        change = ConfChange(change.type, change.node_id, context)
        future = asyncio.get_running_loop().create_future()
        self._conf_waiters[waiter_id] = future

        def propose(node: RawNode) -> None:
            try:
                node.propose_conf_change(change)
            except ProposalDroppedError as exc:
                if not future.done():
                    future.set_exception(self._drop_error(node, str(exc)))

        self._control.append(propose)
        self._wake.set()
        try:
            return await asyncio.wait_for(future, timeout if timeout is not None else self.config.proposal_timeout_seconds)
        except asyncio.TimeoutError:
            raise ProposalTimeoutError(f"membership change {change.type.name} {change.node_id} not applied in time") from None
        finally:
            self._conf_waiters.pop(waiter_id, None)

    async def _tick(self) -> None:
        interval = self.config.tick_seconds
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            now = time.monotonic()
            # Ticks missed while the loop was busy (or the process stopped) are not replayed in a burst: one
            # tick per wake-up keeps a paused node from firing an instant election on SIGCONT.
            self._pending_ticks += 1
            next_at = max(next_at + interval, now + interval / 2)
            self._wake.set()

    async def _expire(self) -> None:
        buckets, heap = self._deadline_buckets, self._other_deadlines
        while True:
            await asyncio.sleep(_BUCKET_SECONDS)
            self._bucket_open = False  # the next default-timeout request starts a new bucket
            now = time.monotonic()
            expired: list[int] = []
            while buckets and buckets[0][0] + self._default_timeout + _BUCKET_SECONDS <= now:
                expired.extend(buckets.popleft()[1])
            while heap and heap[0][0] <= now:
                expired.append(heapq.heappop(heap)[1])
            for waiter_id in expired:
                future = self._waiters.pop(waiter_id, None)
                if future is not None and not future.done():
                    future.set_exception(
                        ProposalTimeoutError("not committed in time; outcome unknown, retry with the same session")
                    )

    # --- internals: the loop --------------------------------------------------------------------------------
    async def _on_disk(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._disk, function, *args)

    async def _drive(self) -> None:
        node, driver = self._node, self._driver
        assert node is not None and driver is not None
        try:
            while not self._stopping:
                await self._wake.wait()
                self._wake.clear()
                self._feed(node)
                # Committed and durable here: apply now, even with a write in flight (the next batch's fsync is
                # not on this batch's path to its proposers).
                if driver.apply_durable_committed() and self._reads_ready:
                    self._serve_reads()
                if not self._in_flight and node.has_ready():
                    self._start_ready(node)
                # Event.wait() does not yield when the event is already set: give the transport (sending this
                # Ready's messages, reading acknowledgements) a turn before the next batch.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug or a disk failure: stop rather than run on with unknown state
            self._fatal = exc
            log.critical("node %d: raft loop failed", self.config.node_id, exc_info=True)
            raise

    def _feed(self, node: RawNode) -> None:
        while self._control:
            self._control.popleft()(node)
        inbox = self._inbox
        transport = self._transport
        while inbox:
            peer, messages = inbox.popleft()
            for message in messages:
                try:
                    node.step(message)
                except StepError as exc:
                    self.counters.step_errors += 1
                    log.debug("node %d: ignored %s from %d: %s", self.config.node_id, message.type.name, message.from_, exc)
            if transport is not None:
                transport.consumed(peer)
        if self._proposals:
            self._propose_batch(node)
        while self._pending_ticks:
            self._pending_ticks -= 1
            node.tick()

    def _propose_batch(self, node: RawNode) -> None:
        """Propose up to `max_batch_proposals` queued requests as one batch (one APPEND per follower).

        At most one batch per Ready: the rest waits for the next Ready, so while the followers persist this
        batch the leader is already persisting the next one (a pipeline) instead of one huge batch at a time.
        """
        queue = self._proposals
        batch = [queue.popleft() for _ in range(min(self.config.max_batch_proposals, len(queue)))]
        raft = node.raft  # read-only: where the batch lands in the leader's log
        before = raft.raft_log.last_index()
        try:
            node.propose_batch([data for data, _ in batch])
        except ProposalDroppedError as exc:
            error = self._drop_error(node, str(exc))
            for _, waiter_id in batch:
                future = self._waiters.pop(waiter_id, None)
                if future is not None and not future.done():
                    future.set_exception(error)
            return
        self.counters.proposals += len(batch)
        self.counters.proposal_batches += 1
        after = raft.raft_log.last_index()
        if raft.role == StateRole.LEADER and after - before == len(batch):
            by_index = self._by_index
            # Entries this node proposed at these indexes in an earlier term were cut from its log when it
            # lost leadership; as leader now, its log holds every committed entry, so they never committed.
            while by_index and by_index[-1][0] > before:
                self._lose(by_index.pop())
            by_index.extend(zip(range(before + 1, after + 1), (waiter_id for _, waiter_id in batch)))

    def _drop_error(self, node: RawNode, reason: str) -> ProposalDroppedByRaftError:
        leader = node.raft.soft_state().leader  # read-only
        if leader == NO_NODE:
            return NotLeaderError(f"no leader known: {reason}")
        return ProposalDroppedByRaftError(reason)

    def _start_ready(self, node: RawNode) -> None:
        driver = self._driver
        assert driver is not None and self._log is not None
        ready = driver.next_ready()
        if ready is None:
            return
        self.counters.readies += 1
        if driver.persist(ready):  # nothing to write
            driver.durable(ready)
            return
        log_store = self._log
        pending = log_store.take_pending()
        self.counters.fsyncs += 1
        self.counters.entries_persisted += len(ready.entries)
        config = self.config
        if not config.write_in_thread or self.counters.write_seconds_ewma < config.inline_write_below_seconds:
            # One write + one fdatasync (~0.1-0.2 ms on SSD) inline: cheaper than two thread hand-offs, and the
            # batching is the same: whatever arrives during the fsync waits in the socket buffers and the
            # proposal queue and forms the next batch the moment it returns. Persist-before-send holds either way:
            # the driver is told the Ready is durable only after write_batch returned.
            self.counters.inline_writes += 1
            try:
                self._write_timed(log_store.storage, pending)
            except BaseException as exc:
                self._stop_on_failure(exc, "log write failed")
                return
            log_store.storage.apply_to_memory(pending)
            driver.durable(ready)
            self._wake.set()
            return
        self._in_flight = True
        future = asyncio.get_running_loop().run_in_executor(self._disk, self._write_timed, log_store.storage, pending)

        def written(done: asyncio.Future) -> None:
            self._in_flight = False
            if done.cancelled() or done.exception() is not None:
                # A failed fsync leaves the page cache in an unknown state (fsyncgate): never continue.
                self._fatal = done.exception() or RuntimeError("disk write cancelled")
                log.critical("node %d: log write failed; stopping", self.config.node_id, exc_info=self._fatal)
                for task in self._tasks:
                    task.cancel()
                return
            log_store.storage.apply_to_memory(pending)
            try:
                driver.durable(ready)
            except BaseException as exc:
                self._fatal = exc
                log.critical("node %d: applying a Ready failed", self.config.node_id, exc_info=True)
                for task in self._tasks:
                    task.cancel()
                return
            self._wake.set()

        future.add_done_callback(written)

    def _write_timed(self, storage: DiskStorage, pending) -> None:
        """storage.write_batch, timed into counters.fsync_seconds (the node reports it as a Prometheus metric)."""
        started = time.perf_counter()
        storage.write_batch(pending)
        took = time.perf_counter() - started
        counters = self.counters
        counters.fsync_seconds += took
        counters.write_seconds_ewma += (took - counters.write_seconds_ewma) / 8

    def _stop_on_failure(self, exc: BaseException, what: str) -> None:
        # A failed fsync leaves the page cache in an unknown state (fsyncgate): never continue after one.
        self._fatal = exc
        log.critical("node %d: %s; stopping", self.config.node_id, what, exc_info=exc)
        for task in self._tasks:
            task.cancel()

    # --- ReadyHandler: what this node does with a durable Ready (driver.py fixes the order) ------------------
    def send(self, messages) -> None:
        if self._transport is not None:
            self._transport.send(list(messages))

    def on_soft_state(self, soft_state) -> None:
        self._soft_role = soft_state.role
        self._leader = soft_state.leader
        self._resolve_leader_waiters()
        if self._next_change is not None and soft_state.leader != self._next_change[0]:
            future = self._next_change[1]
            self._next_change = None
            if not future.done():
                future.set_result(soft_state.leader)

    def on_hard_state(self, hard_state) -> None:
        self._term = hard_state.term
        self._commit = hard_state.commit

    def restore(self, snapshot) -> None:
        self.state.restore(snapshot.data)
        self._applied = snapshot.metadata.index
        self._last_snapshot_index = self._applied
        self._conf_state = snapshot.metadata.conf_state
        self._fail_waiters_through(self._applied)

    def apply(self, entries) -> None:
        assert self._node is not None
        self._apply(self._node, entries)

    def on_read_states(self, read_states) -> None:
        for read_state in read_states:
            future = self._read_waiters.get(read_state.request_ctx)
            if future is not None and not future.done():
                self._reads_ready.append((read_state.index, future))

    def after_advance(self) -> None:
        if self._reads_ready:
            self._serve_reads()
        self._maybe_snapshot()

    def _serve_reads(self) -> None:
        still: list[tuple[int, asyncio.Future]] = []
        for index, future in self._reads_ready:
            if index <= self._applied:
                if not future.done():
                    future.set_result(index)
            else:
                still.append((index, future))
        self._reads_ready = still

    def _apply(self, node: RawNode, entries: tuple[Entry, ...]) -> None:
        run: list[tuple[int, Envelope]] = []
        for entry in entries:
            if entry.type == EntryType.CONF_CHANGE:
                self._apply_run(run)
                run = []
                self._apply_conf_change(node, entry)
            elif entry.data:
                try:
                    run.append((entry.index, decode_envelope(entry.data)))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    # Only the runtime writes entries, so this is a bug or foreign data: skip it everywhere alike.
                    log.error("node %d: entry %d is not an envelope; skipped", self.config.node_id, entry.index)
        self._apply_run(run)
        self._applied = entries[-1].index
        self._fail_waiters_through(self._applied)

    def _apply_run(self, run: list[tuple[int, Envelope]]) -> None:
        if not run:
            return
        outcomes = self.state.apply(run)
        self.counters.applied += len(run)
        me = self.config.node_id
        waiters = self._waiters
        for (index, envelope), outcome in zip(run, outcomes):
            if envelope.origin != me:
                continue
            future = waiters.pop(envelope.proposal, None)
            if future is None or future.done():
                continue
            if outcome.__class__ is Applied:
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
        if self._applied_hooks:
            commands = [Command(index, env.payload, env.client_id, env.sequence) for index, env in run]
            for hook in self._applied_hooks:
                hook(commands, outcomes)

    def _fail_waiters_through(self, applied: int) -> None:
        """Leader proposals whose index is now applied: resolved already if the entry was theirs, else lost."""
        by_index, waiters = self._by_index, self._waiters
        while by_index and by_index[0][0] <= applied:
            placed = by_index.popleft()
            if placed[1] in waiters:  # usually already resolved by its own entry
                self._lose(placed)

    def _lose(self, placed: tuple[int, int]) -> None:
        index, waiter_id = placed
        future = self._waiters.pop(waiter_id, None)
        if future is not None and not future.done():
            future.set_exception(ProposalLostError(f"index {index} was committed with another entry"))

    def _apply_conf_change(self, node: RawNode, entry: Entry) -> None:
        change = decode_conf_change(entry.data)
        self._conf_state = node.apply_conf_change(change)
        log.info("node %d: membership now voters=%s learners=%s", self.config.node_id,
                 self._conf_state.voters, self._conf_state.learners)
        if len(change.context) == 16 and int.from_bytes(change.context[:8], "big") == self.config.node_id:
            future = self._conf_waiters.get(int.from_bytes(change.context[8:], "big"))
            if future is not None and not future.done():
                future.set_result(self._conf_state)

    def _resolve_leader_waiters(self) -> None:
        if not self._leader_waiters:
            return
        still = []
        for target, future in self._leader_waiters:
            if self._leader == target:
                if not future.done():
                    future.set_result(None)
            elif not future.done():
                still.append((target, future))
        self._leader_waiters = still

    # --- snapshots ------------------------------------------------------------------------------------------
    def _maybe_snapshot(self) -> None:
        interval = self.config.snapshot_interval
        if not interval or self._snapshotting or self._applied - self._last_snapshot_index < interval:
            return
        storage = self._storage
        assert storage is not None
        # The image is captured here, on the loop, between two applies: it is exactly the state at `_applied`. The
        # capture is cheap (a copy of the item dict); encoding it, the file write and the fsync run on the snapshot
        # thread, so heartbeats and applies go on meanwhile.
        metadata = storage.create_snapshot(self._applied, self._conf_state, b"")  # the term is read on the loop
        started = time.perf_counter()
        encode = self.state.capture()
        self.counters.snapshot_capture_seconds = time.perf_counter() - started
        self._snapshotting = True
        self._snapshot_task = asyncio.get_running_loop().create_task(self._save_snapshot(metadata, encode))

    async def _save_snapshot(self, metadata, encode) -> None:
        storage = self._storage
        assert storage is not None
        try:
            loop = asyncio.get_running_loop()
            snapshot = msgspec.structs.replace(metadata, data=await loop.run_in_executor(self._snapshot_disk, encode))
            await loop.run_in_executor(self._snapshot_disk, storage.save_snapshot, snapshot)
            # Durable now (file and directory fsync'd, renamed into place): only now may the log shrink.
            storage.install_local_snapshot(snapshot, self.config.snapshot_keep_entries)
            # A snapshot received from the leader meanwhile may be newer: never move the mark back.
            self._last_snapshot_index = max(self._last_snapshot_index, snapshot.metadata.index)
            released = await self._on_disk(storage.release_log, snapshot.metadata.index)
            log.info("node %d: snapshot at %d saved; %d log segments released", self.config.node_id,
                     snapshot.metadata.index, len(released))
        except OSError as exc:
            # The log is intact and keeps growing; the next interval tries again. Say so loudly (disk full?).
            log.error("node %d: snapshot at %d not saved: %r", self.config.node_id, metadata.metadata.index, exc)
        finally:
            self._snapshotting = False
