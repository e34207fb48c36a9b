"""RawNode: the thread-unsafe, I/O-free handle an application drives (etcd-io/raft's RawNode).

The loop every runtime (part B's asyncio runtime, the simulator, tests) follows:

    node.tick()                      # on every clock tick
    node.step(message)               # for every message received from a peer
    node.propose(data)               # for every client request
    if node.has_ready():
        rd = node.ready()
        1. persist rd.snapshot (if any), then rd.entries, then rd.hard_state (if any); fsync if rd.must_sync
        2. only then send rd.messages
        3. apply rd.snapshot (if any) to the state machine, then rd.committed_entries in order
           (for a CONF_CHANGE entry: decode it and call node.apply_conf_change(cc))
        4. serve rd.read_states once the applied index reaches each one's index
        node.advance(rd)

See docs/raft.md for why the order in steps 1-2 is what makes votes and acknowledgements safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import ProposalDroppedError, StepError
from ddx_offchain.raft.core.progress import ProgressState
from ddx_offchain.raft.core.raft import Raft
from ddx_offchain.raft.core.validate import validate_peer_message
from ddx_offchain.raft.messages import (
    LOCAL_MESSAGE_TYPES,
    RESPONSE_MESSAGE_TYPES,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SoftState,
    StateRole,
)
from ddx_offchain.raft.storage import Storage

__all__ = ["Config", "PeerStatus", "ProposalDroppedError", "RawNode", "Ready", "Status", "StepError"]


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the application must do before calling ``advance``; see the module docstring for the order."""

    soft_state: SoftState | None  # set when leader or role changed
    hard_state: HardState | None  # set when term, vote or commit changed: persist it
    read_states: tuple[ReadState, ...]
    entries: tuple[Entry, ...]  # append to stable storage (may overwrite a conflicting tail) BEFORE sending
    snapshot: Snapshot | None  # a snapshot received from the leader: persist, then restore the state machine
    committed_entries: tuple[Entry, ...]  # apply to the state machine, in order
    messages: tuple[Message, ...]  # send only after entries/hard_state/snapshot above are durable
    # Entries, a snapshot, or term/vote changed: the writes need an fsync before the messages leave. False when
    # only the commit index moved (a lost commit index is relearned from the leader).
    must_sync: bool


@dataclass(frozen=True, slots=True)
class PeerStatus:
    match: int
    next: int
    state: ProgressState
    recent_active: bool
    paused: bool
    is_learner: bool
    inflight: int
    pending_snapshot: int


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    last_index: int
    conf_state: ConfState
    lead_transferee: int
    progress: dict[int, PeerStatus]  # only on the leader, empty otherwise


def _without_superseded_appends(messages: list[Message]) -> tuple[Message, ...]:
    """The Ready's messages without the entry-less APPENDs that a later APPEND to the same follower, in the same
    term, at or past the same position, makes redundant (its commit index is at least as high).

    The leader sends an entry-less APPEND to every follower the moment an acknowledgement advances its commit
    index; when requests were proposed in the same loop turn, the APPEND carrying them follows in the same Ready
    with the same (or a higher) commit index. Sending both costs each follower a message, a step and an answer
    for nothing: the follower learns the commit from the second alone (it commits min(commit, last new index),
    which is at least what the first would have given). Pure: a function of the messages only."""
    if len(messages) < 2:
        return tuple(messages)
    latest: dict[int, Message] = {}  # per follower, the next APPEND to it (scanning backwards)
    kept: list[Message] = []
    append = MessageType.APPEND
    for m in reversed(messages):
        if m.type is append:
            later = latest.get(m.to)
            if (
                later is not None
                and not m.entries
                and later.term == m.term
                and later.index >= m.index
                and later.commit >= m.commit
            ):
                continue
            latest[m.to] = m
        kept.append(m)
    kept.reverse()
    return tuple(kept)


class RawNode:
    def __init__(self, config: Config, storage: Storage) -> None:
        """Starts (or restarts) from whatever ``storage`` holds. Raises ConfigError on a bad config."""
        self._raft = Raft(config, storage)
        self._prev_soft_state = self._raft.soft_state()
        self._prev_hard_state = self._raft.hard_state()
        self._outstanding: Ready | None = None

    # --- inputs ----------------------------------------------------------------------------------------------
    def tick(self) -> None:
        self._raft.tick()

    def campaign(self) -> None:
        """Start an election now (pre-vote first if enabled), as if the election timeout fired."""
        self._raft.step(Message(type=MessageType.HUP, from_=self._raft.id))

    def propose(self, data: bytes) -> None:
        """Propose data for the log. Raises ProposalDroppedError when no leader is known, forwarding is disabled,
        a leadership transfer is in progress or the uncommitted tail is full. Acceptance is not commitment: the
        entry is committed when it shows up in Ready.committed_entries."""
        self._raft.propose([Entry(term=0, index=0, type=EntryType.NORMAL, data=data)])

    def propose_batch(self, items: list[bytes] | tuple[bytes, ...]) -> None:
        """Propose several payloads at once: one append and one round of APPENDs for the whole batch, which is
        what a runtime should do with the requests that queued up while the previous fsync ran. All or none:
        a refused batch raises ProposalDroppedError and appends nothing."""
        if not items:
            return
        self._raft.propose([Entry(term=0, index=0, type=EntryType.NORMAL, data=d) for d in items])

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose one membership change. On the leader it is refused with ProposalDroppedError (naming the rule)
        if another change is not yet applied, if it would remove the last voter, or if it promotes a learner
        that has not caught up with the commit index."""
        self._raft.propose_conf_change(cc)

    def step(self, message: Message) -> None:
        """Feed a message received from a peer. Raises StepError (and changes nothing) for local-only message
        types, responses from nodes that are not members, and messages whose fields contradict each other."""
        if message.type in LOCAL_MESSAGE_TYPES:
            raise StepError(f"{message.type.name} is a local message and cannot come from the network")
        validate_peer_message(message, self._raft.id)
        if message.type in RESPONSE_MESSAGE_TYPES and not self._raft.has_progress(message.from_):
            raise StepError(f"{message.type.name} from {message.from_}, which is not a member")
        self._raft.step(message)

    def read_index(self, request_ctx: bytes) -> None:
        """Ask for a linearizable read. When confirmed, a ReadState with this context appears in a Ready; the
        read may be served once the applied index reaches ReadState.index. The context must be unique."""
        self._raft.step(
            Message(type=MessageType.READ_INDEX, from_=self._raft.id, context=request_ctx)
        )

    def transfer_leadership(self, transferee: int) -> None:
        """Ask the leader (this node or, forwarded, the one it knows) to hand leadership to ``transferee``."""
        self._raft.step(Message(type=MessageType.TRANSFER_LEADER, from_=self._raft.id, index=transferee))

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to deliver to node_id: the leader falls back to probing it."""
        self._raft.step(Message(type=MessageType.UNREACHABLE, from_=node_id))

    def report_snapshot(self, node_id: int, succeeded: bool) -> None:
        """The transport finished sending a SNAPSHOT message to node_id. The runtime must report every snapshot
        send; until it does, the leader keeps that follower paused in snapshot state."""
        self._raft.step(Message(type=MessageType.SNAP_STATUS, from_=node_id, reject=not succeeded))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change (call it when applying its CONF_CHANGE entry); returns the new
        membership, which the application stores with its state-machine snapshot."""
        return self._raft.apply_conf_change(cc)

    # --- outputs ---------------------------------------------------------------------------------------------
    def has_ready(self) -> bool:
        raft = self._raft
        log = raft.raft_log
        soft, hard = self._prev_soft_state, self._prev_hard_state
        # Field comparisons instead of building SoftState/HardState: this runs on every loop iteration.
        if raft.lead != soft.leader or raft.role != soft.role:
            return True
        if (raft.term != hard.term or raft.vote != hard.vote or log.committed != hard.commit) and not (
            raft.term == 0 and raft.vote == 0 and log.committed == 0
        ):
            return True
        return bool(
            log.has_pending_snapshot()
            or log.has_unstable_entries()
            or raft.msgs
            or raft.read_states
            or log.has_next_committed_entries()
        )

    def ready(self) -> Ready:
        """What to persist, send and apply now. Call ``advance`` with it when done, before the next ``ready``."""
        if self._outstanding is not None:
            raise StepError("ready() called again before advance() of the previous Ready")
        raft = self._raft
        log = raft.raft_log
        soft = raft.soft_state()
        hard = raft.hard_state()
        entries = log.unstable_entries()
        rd = Ready(
            soft_state=soft if soft != self._prev_soft_state else None,
            hard_state=hard if (not hard.is_empty() and hard != self._prev_hard_state) else None,
            read_states=tuple(raft.read_states),
            entries=tuple(entries),
            snapshot=log.unstable_snapshot(),
            committed_entries=tuple(log.next_committed_entries()),
            messages=_without_superseded_appends(raft.msgs),
            must_sync=bool(entries)
            or log.unstable_snapshot() is not None
            or hard.term != self._prev_hard_state.term
            or hard.vote != self._prev_hard_state.vote,
        )
        raft.msgs = []
        raft.read_states = []
        if rd.soft_state is not None:
            self._prev_soft_state = rd.soft_state
        if rd.committed_entries:
            log.accept_applying(rd.committed_entries[-1].index)
        self._outstanding = rd
        return rd

    def take_durable_committed(self) -> tuple[Entry, ...]:
        """Committed entries already on this node's stable storage, to apply now, even while a Ready is
        outstanding (its write in flight): the application applies them in order, then calls
        ``applied(entries)``. Empty while a received snapshot or an earlier Ready's committed entries are not yet
        applied. Without this a committed entry waits for the next Ready, i.e. for the fsync of whatever was
        proposed meanwhile; etcd's AsyncStorageWrites separates apply from append for the same reason."""
        log = self._raft.raft_log
        entries = log.next_durable_committed_entries()
        if not entries:
            return ()
        log.accept_applying(entries[-1].index)
        return tuple(entries)

    def applied(self, entries: tuple[Entry, ...]) -> None:
        """The entries returned by the last ``take_durable_committed`` are applied."""
        raft = self._raft
        if entries:
            if entries[-1].index != raft.raft_log.applying:
                raise StepError("applied() must be given the entries of the last take_durable_committed()")
            raft.raft_log.applied_to(entries[-1].index)
            raft.reduce_uncommitted_size(entries)

    def advance(self, rd: Ready) -> None:
        """Everything in ``rd`` has been persisted, sent and applied."""
        if rd is not self._outstanding:
            raise StepError("advance() must be given the Ready returned by the last ready()")
        self._outstanding = None
        raft = self._raft
        if rd.hard_state is not None:
            self._prev_hard_state = rd.hard_state
        raft.advance(rd.entries, rd.snapshot, rd.committed_entries)

    def status(self) -> Status:
        raft = self._raft
        progress: dict[int, PeerStatus] = {}
        if raft.role is StateRole.LEADER:
            for node_id, pr in raft.tracker.progress.items():
                progress[node_id] = PeerStatus(
                    match=pr.match,
                    next=pr.next,
                    state=pr.state,
                    recent_active=pr.recent_active,
                    paused=pr.is_paused(),
                    is_learner=pr.is_learner,
                    inflight=pr.inflights.count,
                    pending_snapshot=pr.pending_snapshot,
                )
        return Status(
            id=raft.id,
            hard_state=raft.hard_state(),
            soft_state=raft.soft_state(),
            applied=raft.raft_log.applied,
            last_index=raft.raft_log.last_index(),
            conf_state=raft.tracker.conf_state(),
            lead_transferee=raft.lead_transferee,
            progress=progress,
        )

    @property
    def raft(self) -> Raft:
        """The state machine itself, for tests and the simulator's invariant checks (read-only use)."""
        return self._raft
