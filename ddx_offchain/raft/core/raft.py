"""The Raft state machine (the ideas of etcd-io/raft raft.go, written for Python).

Everything happens in ``step`` (a message in) and ``tick`` (logical time passes); the outputs accumulate in
``msgs`` and ``read_states`` and in the log's unstable part, and RawNode packs them into a Ready. No I/O, no clock,
no randomness except the PRNG seeded from Config.

Roles: FOLLOWER -> (election timeout) PRE_CANDIDATE -> (pre-vote quorum) CANDIDATE -> (vote quorum) LEADER.
PreVote (thesis 9.6): a pre-candidate asks "would you vote for me at term+1?" without changing anyone's term, so
a node cut off from the cluster cannot force a term bump on rejoining. CheckQuorum (thesis 6.2): the leader steps
down when it has not heard from a quorum in an election timeout, and a node that heard from a leader within the
election timeout ignores vote requests (leader lease), unless the vote comes from a leadership transfer.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import LogInvariantError, ProposalDroppedError
from ddx_offchain.raft.core.log import RaftLog
from ddx_offchain.raft.core.prng import SplitMix64
from ddx_offchain.raft.core.progress import ProgressState
from ddx_offchain.raft.core.quorum import VoteResult, vote_result
from ddx_offchain.raft.core.read_only import ReadOnly
from ddx_offchain.raft.core.tracker import ProgressTracker
from ddx_offchain.raft.messages import (
    CAMPAIGN_TRANSFER,
    NO_NODE,
    ConfChange,
    ConfChangeType,
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
    decode_conf_change,
    encode_conf_change,
    entry_size,
)
from ddx_offchain.raft.storage import (
    CompactedError,
    SnapshotTemporarilyUnavailableError,
    Storage,
    UnavailableError,
)

MT = MessageType

_VOTE_TYPES = frozenset({MT.VOTE, MT.PRE_VOTE})
_TERM_FREE_TYPES = frozenset({MT.PROPOSE, MT.READ_INDEX})  # forwarded requests carry no term


class Raft:
    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.config = config
        self.raft_log = RaftLog(storage, config.max_committed_size_per_ready)
        self.tracker = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes)
        self._prng = SplitMix64(config.seed)
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.randomized_election_timeout = config.election_tick
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote

        self.term = 0
        self.vote = NO_NODE
        self.lead = NO_NODE
        self.role = StateRole.FOLLOWER
        self.lead_transferee = NO_NODE
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._propose_dropped = ""  # why the last local proposal was refused ("" if it was not)
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index_messages: list[Message] = []
        self._step_role: Callable[[Message], None] = self._step_follower
        self._tick_role: Callable[[], None] = self._tick_election

        hard_state, conf_state = storage.initial_state()
        self._restore_conf_state(conf_state)
        if not hard_state.is_empty():
            self._load_hard_state(hard_state)
        if config.applied > 0:
            if config.applied > self.raft_log.committed:
                raise LogInvariantError(f"applied {config.applied} beyond commit {self.raft_log.committed}")
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, NO_NODE)

    # --- state views -----------------------------------------------------------------------------------------
    def soft_state(self) -> SoftState:
        return SoftState(leader=self.lead, role=self.role)

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    def has_progress(self, node_id: int) -> bool:
        return node_id in self.tracker.progress

    def promotable(self) -> bool:
        """Whether this node may campaign: it is a voter and is not waiting to persist a snapshot."""
        return self.tracker.is_voter(self.id) and not self.raft_log.has_pending_snapshot()

    def _load_hard_state(self, hs: HardState) -> None:
        log = self.raft_log
        if hs.commit > log.last_index():
            raise LogInvariantError(f"persisted commit {hs.commit} is beyond the last index {log.last_index()}")
        # The commit index may trail the snapshot: a crash can keep a received snapshot but lose the hard state
        # written after it. A snapshot only ever holds committed state, so its index stays committed.
        log.committed = max(log.committed, hs.commit)
        self.term = hs.term
        self.vote = hs.vote

    # --- role transitions ------------------------------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if term < self.term:  # a term only grows: going back would let this node vote twice in a term
            raise LogInvariantError(f"term would go back from {self.term} to {term}")
        if self.term != term:
            self.term = term
            self.vote = NO_NODE
        self.lead = NO_NODE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self._prng.below(self.election_timeout)
        self.lead_transferee = NO_NODE
        self.tracker.reset_votes()
        last = self.raft_log.last_index()
        for node_id, pr in list(self.tracker.progress.items()):
            fresh = self.tracker.new_progress(last + 1, pr.is_learner)
            if node_id == self.id:
                fresh.match = last
            self.tracker.progress[node_id] = fresh
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_read_index_messages = []

    def become_follower(self, term: int, lead: int) -> None:
        self._step_role = self._step_follower
        self._reset(term)
        self._tick_role = self._tick_election
        self.lead = lead
        self.role = StateRole.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.role == StateRole.LEADER:
            raise LogInvariantError("leader cannot become pre-candidate")
        # Term and vote stay: a pre-vote round changes nothing durable.
        self._step_role = self._step_candidate
        self.tracker.reset_votes()
        self._tick_role = self._tick_election
        self.lead = NO_NODE
        self.role = StateRole.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.role == StateRole.LEADER:
            raise LogInvariantError("leader cannot become candidate")
        self._step_role = self._step_candidate
        self._reset(self.term + 1)
        self._tick_role = self._tick_election
        self.vote = self.id
        self.role = StateRole.CANDIDATE

    def become_leader(self) -> None:
        if self.role == StateRole.FOLLOWER:
            raise LogInvariantError("follower cannot become leader without an election")
        self._step_role = self._step_leader
        self._reset(self.term)
        self._tick_role = self._tick_heartbeat
        self.lead = self.id
        self.role = StateRole.LEADER
        own = self.tracker.progress[self.id]
        own.become_replicate()
        own.recent_active = True
        # Conf changes proposed by an earlier leader may sit uncommitted in our log; refuse new ones until
        # everything up to here is applied. Together with the empty entry below this is the fix to the
        # single-server change bug (Ongaro, raft-dev 2015): a new leader commits an entry of its own term
        # before any membership change it proposes can take effect.
        self.pending_conf_index = self.raft_log.last_index()
        self._append_entries([Entry(term=0, index=0)])

    # --- ticking ---------------------------------------------------------------------------------------------
    def tick(self) -> None:
        self._tick_role()

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(type=MT.HUP, from_=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(type=MT.CHECK_QUORUM, from_=self.id))
            if self.role == StateRole.LEADER and self.lead_transferee != NO_NODE:
                self._abort_leader_transfer()  # the transferee did not take over within an election timeout
        if self.role != StateRole.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(type=MT.BEAT, from_=self.id))

    # --- sending ---------------------------------------------------------------------------------------------
    def _send(self, m: Message, term: int | None = None) -> None:
        if m.type in _VOTE_TYPES or m.type in (MT.VOTE_RESP, MT.PRE_VOTE_RESP):
            # Vote traffic carries an explicit term: the term a pre-vote is for, or the term being answered.
            msg_term = m.term if term is None else term
        elif m.type in _TERM_FREE_TYPES:
            msg_term = 0
        else:
            msg_term = self.term
        self.msgs.append(
            Message(
                type=m.type,
                to=m.to,
                from_=self.id,
                term=msg_term,
                log_term=m.log_term,
                index=m.index,
                entries=m.entries,
                commit=m.commit,
                snapshot=m.snapshot,
                reject=m.reject,
                reject_hint=m.reject_hint,
                context=m.context,
            )
        )

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        """Send what ``to`` needs next (entries, an empty probe, or a snapshot). Returns whether anything went."""
        pr = self.tracker.progress[to]
        if pr.is_paused():
            return False
        log = self.raft_log
        prev_index = pr.next - 1
        try:
            prev_term = log.term(prev_index)
            entries = log.entries(pr.next, self.config.max_size_per_msg)
        except (CompactedError, UnavailableError):
            return self._send_snapshot(to)
        if not entries and not send_if_empty:
            return False
        self._send(
            Message(
                type=MT.APPEND,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(entries),
                commit=log.committed,
            )
        )
        pr.sent_entries(len(entries), sum(entry_size(e) for e in entries))
        return True

    def _send_snapshot(self, to: int) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            return False  # do not ship a snapshot to a peer that may be down
        try:
            snapshot = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snapshot.is_empty():
            raise LogInvariantError("entries are compacted but there is no snapshot")
        pr.become_snapshot(snapshot.metadata.index)
        self._send(Message(type=MT.SNAPSHOT, to=to, snapshot=snapshot))
        return True

    def _send_heartbeat(self, to: int, ctx: bytes) -> None:
        # Never tell a follower to commit beyond what it is known to hold: its log may still diverge.
        commit = min(self.tracker.progress[to].match, self.raft_log.committed)
        self._send(Message(type=MT.HEARTBEAT, to=to, commit=commit, context=ctx))

    def _bcast_append(self) -> None:
        for node_id in self.tracker.sorted_ids():
            if node_id != self.id:
                self._send_append(node_id)

    def _bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for node_id in self.tracker.sorted_ids():
            if node_id != self.id:
                self._send_heartbeat(node_id, ctx)

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(type=MT.TIMEOUT_NOW, to=to))

    def _abort_leader_transfer(self) -> None:
        self.lead_transferee = NO_NODE

    # --- log helpers (leader) --------------------------------------------------------------------------------
    def _append_entries(self, entries: list[Entry]) -> bool:
        size = sum(entry_size(e) for e in entries)
        limit = self.config.max_uncommitted_entries_size
        if self.uncommitted_size > 0 and size > 0 and self.uncommitted_size + size > limit:
            return False
        self.uncommitted_size += size
        log = self.raft_log
        last = log.last_index()
        stamped = [
            Entry(term=self.term, index=last + 1 + k, type=e.type, data=e.data) for k, e in enumerate(entries)
        ]
        last = log.append(stamped)
        # The leader counts its own entries toward the quorum at once: its Ready persists them before any
        # message that could bring back an acknowledgement leaves, so no commit can outrun its own disk.
        self.tracker.progress[self.id].maybe_update(last)
        self._maybe_commit()
        return True

    def _maybe_commit(self) -> bool:
        if not self.tracker.voters:
            return False
        return self.raft_log.maybe_commit(self.tracker.committed(), self.term)

    def committed_entry_in_current_term(self) -> bool:
        return self.raft_log.term_or_zero(self.raft_log.committed) == self.term

    def reduce_uncommitted_size(self, entries: tuple[Entry, ...]) -> None:
        if self.role != StateRole.LEADER:
            return
        size = sum(entry_size(e) for e in entries)
        self.uncommitted_size = max(0, self.uncommitted_size - size)

    # --- proposals -------------------------------------------------------------------------------------------
    def propose(self, entries: list[Entry]) -> None:
        """Step a local proposal, raising ProposalDroppedError if it was not taken."""
        self._propose_dropped = ""
        self.step(Message(type=MT.PROPOSE, from_=self.id, entries=tuple(entries)))
        if self._propose_dropped:
            reason, self._propose_dropped = self._propose_dropped, ""
            raise ProposalDroppedError(reason)

    def propose_conf_change(self, cc: ConfChange) -> None:
        if self.role == StateRole.LEADER:
            reason = self._conf_change_refusal(cc)
            if reason:
                raise ProposalDroppedError(reason)
        self.propose([Entry(term=0, index=0, type=EntryType.CONF_CHANGE, data=encode_conf_change(cc))])

    def _conf_change_refusal(self, cc: ConfChange) -> str:
        """Why the leader must not append this conf change now ("" if it may)."""
        if self.pending_conf_index > self.raft_log.applied:
            return (
                f"a membership change (index {self.pending_conf_index}) is not yet applied "
                f"(applied {self.raft_log.applied}): one change at a time"
            )
        tracker = self.tracker
        if cc.node_id == NO_NODE:
            return "conf change names no node"
        if cc.type == ConfChangeType.REMOVE_NODE:
            if tracker.voters == {cc.node_id}:
                return "cannot remove the last voter"
        elif cc.type == ConfChangeType.ADD_VOTER:
            if cc.node_id not in tracker.learners and cc.node_id not in tracker.voters:
                # Thesis 4.2.1: a new server with an empty log would count toward the quorum while it cannot
                # acknowledge anything, which can stall commits. It joins as a learner and is promoted once caught up.
                return f"node {cc.node_id} is not a member: add it as a learner first, then promote it"
            if cc.node_id in tracker.learners:
                pr = tracker.progress[cc.node_id]
                if pr.match < self.raft_log.committed:
                    return (
                        f"learner {cc.node_id} has not caught up (match {pr.match} < commit "
                        f"{self.raft_log.committed}): promote it once it has"
                    )
        elif cc.type == ConfChangeType.ADD_LEARNER:
            if tracker.voters == {cc.node_id}:
                return "cannot demote the last voter"
        return ""

    # --- the entry point -------------------------------------------------------------------------------------
    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # local message (or a forwarded proposal / read request)
        elif m.term > self.term:
            if m.type in _VOTE_TYPES:
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NO_NODE
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # Heard from a live leader within the minimum election timeout: this candidate is
                    # disruptive (thesis 4.2.3). Do not bump the term, do not answer.
                    return
            if m.type == MT.PRE_VOTE:
                pass  # never change term on a pre-vote request
            elif m.type == MT.PRE_VOTE_RESP and not m.reject:
                pass  # the term in a granted pre-vote is the one we will campaign for, not a newer leader's
            elif m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, NO_NODE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APPEND):
                # A leader from an older term (e.g. it was partitioned and we moved on, possibly without
                # electing anyone because its followers still see it): tell it the new term so it steps down.
                self._send(Message(type=MT.APPEND_RESP, to=m.from_))
            elif m.type == MT.PRE_VOTE:
                # Reject with our term so the pre-candidate learns it is behind.
                self._send(Message(type=MT.PRE_VOTE_RESP, to=m.from_, reject=True), term=self.term)
            return  # every other stale message is ignored

        t = m.type
        if t == MT.HUP:
            self._hup(transfer=False)
        elif t in _VOTE_TYPES:
            can_vote = (
                self.vote == m.from_
                or (self.vote == NO_NODE and self.lead == NO_NODE)
                or (t == MT.PRE_VOTE and m.term > self.term)
            )
            resp_type = MT.VOTE_RESP if t == MT.VOTE else MT.PRE_VOTE_RESP
            if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
                # Answer with the term of the request so the (pre-)candidate counts it (for a pre-vote that is
                # a term we have not entered ourselves).
                self._send(Message(type=resp_type, to=m.from_), term=m.term)
                if t == MT.VOTE:
                    self.election_elapsed = 0
                    self._record_vote(m.from_)
            else:
                self._send(Message(type=resp_type, to=m.from_, reject=True), term=self.term)
        else:
            self._step_role(m)

    def _record_vote(self, candidate: int) -> None:
        """At most one vote per term: the rule election safety rests on, checked whatever granted it."""
        if self.vote not in (NO_NODE, candidate):
            raise LogInvariantError(f"second vote in term {self.term}: {self.vote}, then {candidate}")
        self.vote = candidate

    # --- elections -------------------------------------------------------------------------------------------
    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        if log.committed <= log.applied:
            return False
        for e in log.slice(log.applied + 1, log.committed + 1):
            if e.type == EntryType.CONF_CHANGE:
                return True
        return False

    def _hup(self, transfer: bool) -> None:
        if self.role == StateRole.LEADER:
            return
        if not self.promotable():
            return
        if self._has_unapplied_conf_change():
            # Our view of the membership may be stale until that change is applied.
            return
        if transfer or not self.pre_vote:
            self._campaign_election(transfer)
        else:
            self._campaign_pre_election()

    def _campaign_pre_election(self) -> None:
        self.become_pre_candidate()
        if self._poll(self.id, True) == VoteResult.WON:
            self._campaign_election(False)  # single voter
            return
        self._request_votes(MT.PRE_VOTE, self.term + 1, b"")

    def _campaign_election(self, transfer: bool) -> None:
        self.become_candidate()
        if self._poll(self.id, True) == VoteResult.WON:
            self.become_leader()
            return
        self._request_votes(MT.VOTE, self.term, CAMPAIGN_TRANSFER if transfer else b"")

    def _request_votes(self, vote_type: MessageType, term: int, ctx: bytes) -> None:
        last = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        for node_id in sorted(self.tracker.voters):
            if node_id == self.id:
                continue
            self._send(
                Message(type=vote_type, to=node_id, index=last, log_term=last_term, context=ctx), term=term
            )

    def _poll(self, node_id: int, granted: bool) -> VoteResult:
        self.tracker.record_vote(node_id, granted)
        return self.tracker.tally_votes()[2]

    # --- role-specific handling ------------------------------------------------------------------------------
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.BEAT:
            self._bcast_heartbeat()
            return
        if t == MT.CHECK_QUORUM:
            if not self.tracker.quorum_active():
                self.become_follower(self.term, NO_NODE)
                return
            for node_id, pr in self.tracker.progress.items():
                pr.recent_active = node_id == self.id
            return
        if t == MT.PROPOSE:
            self._leader_propose(m)
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return
        if t == MT.TRANSFER_LEADER:
            self._leader_transfer(m)
            return

        pr = self.tracker.progress.get(m.from_)
        if pr is None:
            return  # not a member (any more)
        if t == MT.APPEND_RESP:
            pr.recent_active = True
            if m.reject:
                next_probe = m.reject_hint
                if m.log_term > 0:
                    # Skip every entry of ours whose term is above the follower's term at the hint: none of
                    # them can match (etcd's fast back-off, one round trip per term instead of per entry).
                    next_probe, _ = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
                if pr.maybe_decr_to(m.index, next_probe):
                    if pr.state == ProgressState.REPLICATE:
                        pr.become_probe()
                    self._send_append(m.from_)
                return
            was_paused = pr.is_paused()
            if pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE):
                if pr.state == ProgressState.PROBE:
                    pr.become_replicate()
                elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.raft_log.first_index():
                    # The snapshot (or a later append) arrived; what follows is in our log.
                    pr.become_probe()
                    pr.become_replicate()
                elif pr.state == ProgressState.REPLICATE:
                    pr.inflights.free_le(m.index)
                if self._maybe_commit():
                    self._release_pending_read_index_messages()
                    self._bcast_append()
                elif was_paused:
                    self._send_append(m.from_)
                while self._send_append(m.from_, send_if_empty=False):
                    pass  # keep the pipe full up to the flow-control limits
                if m.from_ == self.lead_transferee and pr.match == self.raft_log.last_index():
                    self._send_timeout_now(m.from_)
            return
        if t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                # Appends may have been lost: free one slot so the pipe restarts (a lost append then shows
                # up as a rejection, which moves the follower back to probing).
                pr.inflights.free_first_one()
            if pr.match < self.raft_log.last_index() or pr.state == ProgressState.PROBE:
                self._send_append(m.from_)
            if not m.context:
                return
            acks = self.read_only.recv_ack(m.from_, m.context)
            if acks is None:
                return
            votes = {a: True for a in acks}
            if vote_result(self.tracker.voters, votes) != VoteResult.WON:
                return
            for status in self.read_only.advance(m.context):
                self._answer_read_index(status.request, status.index)
            return
        if t == MT.SNAP_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for the next heartbeat answer before probing: the snapshot may still be being applied.
            pr.probe_sent = True
            return
        if t == MT.UNREACHABLE:
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            return

    def _leader_transfer(self, m: Message) -> None:
        transferee = m.index
        pr = self.tracker.progress.get(transferee)
        if pr is None or pr.is_learner:
            return  # only a voter can take over
        if self.lead_transferee != NO_NODE:
            if self.lead_transferee == transferee:
                return  # already transferring to it
            self._abort_leader_transfer()
        if transferee == self.id:
            return  # already the leader
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = transferee
        if pr.match == self.raft_log.last_index():
            self._send_timeout_now(transferee)
        else:
            self._send_append(transferee)

    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise LogInvariantError("empty proposal")
        if self.id not in self.tracker.progress:
            self._propose_dropped = "this leader was removed from the cluster"
            return
        if self.lead_transferee != NO_NODE:
            self._propose_dropped = f"leadership transfer to {self.lead_transferee} in progress"
            return
        entries = list(m.entries)
        for k, e in enumerate(entries):
            if e.type != EntryType.CONF_CHANGE:
                continue
            try:
                reason = self._conf_change_refusal(decode_conf_change(e.data))
            except (msgspec.DecodeError, msgspec.ValidationError):
                reason = "malformed conf change"  # refused here, so no node ever has to apply it
            if reason:
                # Keep the batch's shape (forwarded batches): an empty normal entry in its place.
                entries[k] = Entry(term=0, index=0)
            else:
                self.pending_conf_index = self.raft_log.last_index() + k + 1
        if not self._append_entries(entries):
            self._propose_dropped = "too many uncommitted bytes (max_uncommitted_entries_size)"
            return
        self._bcast_append()

    def _leader_read_index(self, m: Message) -> None:
        if len(self.tracker.voters) == 1 and self.id in self.tracker.voters:
            self._answer_read_index(m, self.raft_log.committed)
            return
        if not self.committed_entry_in_current_term():
            # Our commit index may lag the previous leader's until an entry of our term commits.
            self.pending_read_index_messages.append(m)
            return
        self._start_read_index(m)

    def _start_read_index(self, m: Message) -> None:
        self.read_only.add_request(self.raft_log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self._bcast_heartbeat(m.context)

    def _release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self.committed_entry_in_current_term():
            return
        pending, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in pending:
            self._start_read_index(m)

    def _answer_read_index(self, request: Message, index: int) -> None:
        if request.from_ in (NO_NODE, self.id):
            self.read_states.append(ReadState(index=index, request_ctx=request.context))
        else:
            self._send(Message(type=MT.READ_INDEX_RESP, to=request.from_, index=index, context=request.context))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MT.PRE_VOTE_RESP if self.role == StateRole.PRE_CANDIDATE else MT.VOTE_RESP
        if t == MT.PROPOSE:
            self._propose_dropped = "no leader (election in progress)"
        elif t == MT.APPEND:
            self.become_follower(m.term, m.from_)
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.become_follower(m.term, m.from_)
            self._handle_heartbeat(m)
        elif t == MT.SNAPSHOT:
            self.become_follower(m.term, m.from_)
            self._handle_snapshot(m)
        elif t == my_resp:
            result = self._poll(m.from_, not m.reject)
            if result == VoteResult.WON:
                if self.role == StateRole.PRE_CANDIDATE:
                    self._campaign_election(False)
                else:
                    self.become_leader()
                    self._bcast_append()
            elif result == VoteResult.LOST:
                # A pre-candidate stays at its term; a candidate keeps the term it bumped to.
                self.become_follower(self.term, NO_NODE)
        # TIMEOUT_NOW and the rest are ignored while campaigning.

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.PROPOSE:
            if self.lead == NO_NODE:
                self._propose_dropped = "no leader known"
            elif self.config.disable_proposal_forwarding:
                self._propose_dropped = "proposal forwarding is disabled"
            else:
                self._send(Message(type=MT.PROPOSE, to=self.lead, entries=m.entries))
        elif t == MT.APPEND:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_heartbeat(m)
        elif t == MT.SNAPSHOT:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif t == MT.TRANSFER_LEADER:
            if self.lead != NO_NODE:
                self._send(Message(type=MT.TRANSFER_LEADER, to=self.lead, index=m.index))
        elif t == MT.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif t == MT.READ_INDEX:
            if self.lead != NO_NODE:
                self._send(Message(type=MT.READ_INDEX, to=self.lead, context=m.context))
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(index=m.index, request_ctx=m.context))

    # --- follower handlers -----------------------------------------------------------------------------------
    def _handle_append(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            # Everything up to our commit index matches the leader already (Log Matching + Leader Completeness).
            self._send(Message(type=MT.APPEND_RESP, to=m.from_, index=log.committed))
            return
        appended = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if appended is not None:
            last_new, replaced = appended
            if replaced:
                self._drop_stale_acks(replaced)
            self._send(Message(type=MT.APPEND_RESP, to=m.from_, index=last_new))
            return
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            Message(
                type=MT.APPEND_RESP,
                to=m.from_,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _drop_stale_acks(self, from_index: int) -> None:
        """Our log from ``from_index`` on was just replaced. Acknowledgements still waiting in ``msgs`` for
        indexes there now promise entries we no longer hold (and that never reached the disk): a leader of the
        older term could count them toward a commit. Dropping a message is always safe; sending those is not."""
        self.msgs = [
            m for m in self.msgs if not (m.type == MT.APPEND_RESP and not m.reject and m.index >= from_index)
        ]

    def _handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(min(m.commit, self.raft_log.last_index()))
        self._send(Message(type=MT.HEARTBEAT_RESP, to=m.from_, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        if m.snapshot is not None and self._restore(m.snapshot):
            self._send(Message(type=MT.APPEND_RESP, to=m.from_, index=self.raft_log.last_index()))
        else:
            self._send(Message(type=MT.APPEND_RESP, to=m.from_, index=self.raft_log.committed))

    def _restore(self, snapshot: Snapshot) -> bool:
        meta = snapshot.metadata
        log = self.raft_log
        if meta.index <= log.committed:
            return False
        if self.role != StateRole.FOLLOWER:
            # Only a leader of this term sends snapshots and we step down on seeing one; be defensive anyway.
            self.become_follower(self.term + 1, NO_NODE)
            return False
        # Unlike etcd we accept a snapshot whose membership does not include us yet: a node being added is sent
        # the leader's latest snapshot, which may predate the entry that adds it. Refusing would loop forever
        # (nothing forces a newer snapshot). Accepting is safe: without progress for ourselves we cannot
        # campaign, and we learn our membership from the entries that follow.
        cs = meta.conf_state
        if log.match_term(meta.index, meta.term):
            # We already hold the snapshot's last entry: just fast-forward the commit index.
            log.commit_to(meta.index)
            return False
        old_commit = log.committed
        log.restore(snapshot)
        self._drop_stale_acks(old_commit + 1)  # everything above the old commit index was replaced
        self._restore_conf_state(cs)
        return True

    # --- membership ------------------------------------------------------------------------------------------
    def _restore_conf_state(self, cs: ConfState) -> None:
        overlap = set(cs.voters) & set(cs.learners)
        if overlap:
            raise LogInvariantError(f"nodes {sorted(overlap)} are both voter and learner")
        tracker = self.tracker
        tracker.voters = set(cs.voters)
        tracker.learners = set(cs.learners)
        next_index = self.raft_log.last_index() + 1
        tracker.progress = {}
        for node_id in sorted(tracker.voters | tracker.learners):
            pr = tracker.new_progress(next_index, node_id in tracker.learners)
            if node_id == self.id:
                pr.match = next_index - 1
            tracker.progress[node_id] = pr

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        tracker = self.tracker
        node = cc.node_id
        next_index = self.raft_log.last_index() + 1
        if cc.type == ConfChangeType.REMOVE_NODE:
            tracker.voters.discard(node)
            tracker.learners.discard(node)
            tracker.progress.pop(node, None)
        else:
            as_learner = cc.type == ConfChangeType.ADD_LEARNER
            if as_learner:
                tracker.voters.discard(node)
                tracker.learners.add(node)
            else:
                tracker.learners.discard(node)
                tracker.voters.add(node)
            pr = tracker.progress.get(node)
            if pr is None:
                pr = tracker.new_progress(next_index, as_learner)
                # A fresh peer counts as active so CheckQuorum does not trip before it first answers.
                pr.recent_active = True
                if node == self.id:
                    pr.match = next_index - 1
                tracker.progress[node] = pr
            else:
                pr.is_learner = as_learner
        tracker.votes = {k: v for k, v in tracker.votes.items() if k in tracker.voters}
        self._after_conf_change()
        return tracker.conf_state()

    def _after_conf_change(self) -> None:
        if self.role != StateRole.LEADER:
            return
        tracker = self.tracker
        if self.id not in tracker.voters:
            # The leader was removed or demoted: hand over to the most caught-up voter and step down.
            best = max(
                (v for v in tracker.voters if v in tracker.progress),
                key=lambda v: (tracker.progress[v].match, -v),
                default=NO_NODE,
            )
            if best != NO_NODE and tracker.progress[best].match == self.raft_log.last_index():
                self._send_timeout_now(best)
            self.become_follower(self.term, NO_NODE)
            return
        if self.lead_transferee != NO_NODE and self.lead_transferee not in tracker.voters:
            self._abort_leader_transfer()
        if self._maybe_commit():
            self._bcast_append()
        else:
            for node_id in tracker.sorted_ids():
                if node_id != self.id:
                    self._send_append(node_id, send_if_empty=False)

    # --- after a Ready was handled ---------------------------------------------------------------------------
    def advance(
        self, entries: tuple[Entry, ...], snapshot: Snapshot | None, committed: tuple[Entry, ...]
    ) -> None:
        log = self.raft_log
        if snapshot is not None:
            log.stable_snap_to(snapshot.metadata.index)
            log.applied_to(snapshot.metadata.index)
        if entries:
            last = entries[-1]
            log.stable_to(last.index, last.term)
        if committed:
            log.applied_to(committed[-1].index)
            self.reduce_uncommitted_size(committed)
