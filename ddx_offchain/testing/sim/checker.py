"""Safety checks run by the simulator after every step (Raft paper figure 3, plus the client's view).

- Election safety: at most one leader per term.
- Leader append-only: while a node leads a term, entries already in its log never change.
- Log matching: an (index, term) pair names one entry, and the same entry always follows the same previous
  term — checked on every write to any disk, so two logs that share an entry share the whole prefix.
- Leader completeness: a new leader holds every entry observed committed so far.
- State machine safety: every node applies the same entry at a given index.
- Commit index monotonic: within a run of a node, and on its disk across crashes.
- Persist before send: a message leaves only when what it promises is durable (vote, acknowledged entries, term).
- Clients: an acknowledged proposal is applied exactly once, in the same order, on every member (final check).
"""

from __future__ import annotations

from ddx_offchain.raft.messages import Entry, Message, MessageType, Snapshot, StateRole
from ddx_offchain.raft.storage import CompactedError, UnavailableError
from ddx_offchain.testing.sim.fsm import SimulationFailure

# Annotations name simulator.py's SimNode and Simulation as text only: the simulator imports this module, and
# importing it back would tie the two files in a circle.

MT = MessageType


def _fail(text: str) -> None:
    raise SimulationFailure(text)


class Checker:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.leader_of_term: dict[int, int] = {}
        self.leader_view: dict[tuple[int, int], tuple[int, int]] = {}  # (node, term) -> (last index, its term)
        self.entry_registry: dict[tuple[int, int], tuple[bytes, int]] = {}  # (index, term) -> (data, prev term)
        self.committed_terms: list[int] = [0]  # committed_terms[i]: term of the committed entry at index i
        self.applied: list[tuple[int, bytes]] = [(0, b"")]  # applied[i]: (term, data) applied at index i
        self.commit_seen: dict[int, int] = {}  # node -> highest commit index seen in this incarnation
        self.durable_commit: dict[int, int] = {}  # node -> highest commit index seen on its disk
        self.acknowledged: list[tuple[int, int]] = []
        # ReadIndex: ctx -> number of proposals acknowledged when the read was requested; then the confirmed
        # read index per node, waiting for the node's applied index to reach it.
        self.reads_requested: dict[bytes, dict[int, int]] = {}
        self.acked_max: dict[int, int] = {}  # client -> highest acknowledged sequence number
        self.reads_waiting: dict[int, list[tuple[int, bytes]]] = {}
        self.reads_served = 0

    # --- lifecycle hooks -------------------------------------------------------------------------------------
    def on_start(self, node: SimNode) -> None:
        self.commit_seen[node.id] = node.raw.raft.raft_log.committed
        durable = node.disk.durable.hard_state().commit
        if durable < self.durable_commit.get(node.id, 0):
            _fail(f"node {node.id}: durable commit went back to {durable} from {self.durable_commit[node.id]}")

    def on_synced(self, node: SimNode) -> None:
        commit = node.disk.durable.hard_state().commit
        if commit < self.durable_commit.get(node.id, 0):
            _fail(f"node {node.id}: durable commit decreased to {commit}")
        self.durable_commit[node.id] = commit

    # --- log matching ----------------------------------------------------------------------------------------
    def on_entries_written(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        live = node.disk.live
        registry = self.entry_registry
        try:
            prev_term = live.term(entries[0].index - 1)
        except (CompactedError, UnavailableError):
            prev_term = -1
        for e in entries:
            key = (e.index, e.term)
            known = registry.get(key)
            if known is None:
                registry[key] = (e.data, prev_term)
            else:
                if known[0] != e.data:
                    _fail(f"log matching: two different entries at index {e.index} term {e.term}")
                if prev_term != -1 and known[1] != -1 and known[1] != prev_term:
                    _fail(
                        f"log matching: entry {e.index}@{e.term} follows term {prev_term} on node {node.id} "
                        f"but term {known[1]} elsewhere"
                    )
            prev_term = e.term

    # --- per-step check of the node the event touched --------------------------------------------------------
    def check_node(self, node: SimNode) -> None:
        raft = node.raw.raft
        log = raft.raft_log
        committed = log.committed
        seen = self.commit_seen.get(node.id, 0)
        if committed < seen:
            _fail(f"node {node.id}: commit index went back from {seen} to {committed}")
        if committed > seen:
            self._record_commits(node, seen + 1, committed)
            self.commit_seen[node.id] = committed
        if raft.role == StateRole.LEADER:
            term = raft.term
            holder = self.leader_of_term.setdefault(term, node.id)
            if holder != node.id:
                _fail(f"election safety: nodes {holder} and {node.id} both lead term {term}")
            key = (node.id, term)
            view = self.leader_view.get(key)
            last = log.last_index()
            if view is None:
                self._check_leader_completeness(node)
            else:
                prev_last, prev_term = view
                if last < prev_last or log.term_or_zero(prev_last) not in (prev_term, 0):
                    _fail(f"leader append-only: leader {node.id} of term {term} changed or lost entry {prev_last}")
            self.leader_view[key] = (last, log.term(last))

    def _record_commits(self, node: SimNode, lo: int, hi: int) -> None:
        log = node.raw.raft.raft_log
        terms = self.committed_terms
        first = log.first_index()
        for i in range(max(lo, first), hi + 1):
            t = log.term(i)
            if i < len(terms):
                if terms[i] == 0:
                    terms[i] = t  # a gap filled earlier without knowing the term
                elif terms[i] != t:
                    _fail(f"node {node.id} committed term {t} at index {i}, another node committed term {terms[i]}")
            else:
                if i != len(terms):
                    # Committed further than anyone else seen so far, past a gap covered by a snapshot: the gap
                    # is filled from this node's own log where possible.
                    for j in range(len(terms), i):
                        terms.append(log.term_or_zero(j))
                terms.append(t)

    def _check_leader_completeness(self, node: SimNode) -> None:
        log = node.raw.raft.raft_log
        terms = self.committed_terms
        last_committed = len(terms) - 1
        if log.last_index() < last_committed:
            _fail(
                f"leader completeness: new leader {node.id} (term {node.raw.raft.term}) ends at "
                f"{log.last_index()}, but index {last_committed} is committed"
            )
        for i in range(max(1, log.first_index()), last_committed + 1):
            if terms[i] and log.term(i) != terms[i]:
                _fail(
                    f"leader completeness: new leader {node.id} has term {log.term(i)} at {i}, "
                    f"committed term is {terms[i]}"
                )

    # --- state machine safety --------------------------------------------------------------------------------
    def on_applied(self, node: SimNode, entry: Entry) -> None:
        applied = self.applied
        i = entry.index
        durable = node.disk.durable
        if i > durable.last_index() or (i >= durable.first_index() and durable.term(i) != entry.term):
            _fail(f"node {node.id} applied {entry.term}/{i} before it was durable on its own disk")
        if i < len(applied):
            if applied[i][0] == -1:
                applied[i] = (entry.term, entry.data)
            elif applied[i] != (entry.term, entry.data):
                _fail(f"state machine safety: node {node.id} applied {entry.term}/{entry.data!r} at {i}, "
                      f"another node applied {applied[i]}")
        elif i == len(applied):
            applied.append((entry.term, entry.data))
        else:
            # First application past a gap (this node caught up by snapshot earlier than others applied).
            applied.extend([(-1, b"")] * (i - len(applied)))
            applied.append((entry.term, entry.data))

    def on_snapshot_restored(self, node: SimNode, snapshot: Snapshot) -> None:
        meta = snapshot.metadata
        if meta.index < len(self.committed_terms) and self.committed_terms[meta.index] not in (0, meta.term):
            _fail(f"node {node.id} restored a snapshot at {meta.index}@{meta.term} that conflicts with the "
                  f"committed term {self.committed_terms[meta.index]}")

    def on_acknowledged(self, node: SimNode, client: int, seq: int) -> None:
        self.acknowledged.append((client, seq))
        self.acked_max[client] = max(seq, self.acked_max.get(client, 0))

    # --- linearizable reads ----------------------------------------------------------------------------------
    def on_read_requested(self, node: SimNode, ctx: bytes) -> None:
        self.reads_requested[ctx] = dict(self.acked_max)

    def on_read_confirmed(self, node: SimNode, read_state) -> None:
        if read_state.request_ctx not in self.reads_requested:
            _fail(f"node {node.id} confirmed a read nobody asked for: {read_state.request_ctx!r}")
        self.reads_waiting.setdefault(node.id, []).append((read_state.index, read_state.request_ctx))

    def serve_reads(self, node: SimNode) -> None:
        """A confirmed read is served once applied >= its index: it must see every write acknowledged before
        the read was requested (linearizability of ReadIndex)."""
        waiting = self.reads_waiting.get(node.id)
        if not waiting:
            return
        applied = node.fsm.applied_index
        still = []
        for index, ctx in waiting:
            if index > applied:
                still.append((index, ctx))
                continue
            # Sequence numbers of a client are applied in order (checked on apply), so the session table says
            # exactly which of its writes are visible.
            sessions = node.fsm.sessions
            for client, seq in self.reads_requested[ctx].items():
                if sessions.get(client, 0) < seq:
                    _fail(f"stale read on node {node.id}: read {ctx!r} at index {index} misses {client}:{seq}, "
                          f"acknowledged before the read was requested")
            self.reads_served += 1
        self.reads_waiting[node.id] = still

    def on_crash(self, node: SimNode) -> None:
        self.commit_seen.pop(node.id, None)
        self.reads_waiting.pop(node.id, None)

    # --- persist before send ---------------------------------------------------------------------------------
    def check_persisted_before_send(self, node: SimNode, m: Message) -> None:
        if m.from_ != node.id or m.to == node.id:
            _fail(f"node {node.id} sent {m.type.name} from {m.from_} to {m.to}: from_ must be the sender")
        durable = node.disk.durable
        hs = durable.hard_state()
        if m.type in (MT.PRE_VOTE, MT.PRE_VOTE_RESP):
            return  # pre-votes promise nothing and carry a term nobody has entered
        if m.term > hs.term:
            _fail(f"persist before send: node {node.id} sent {m.type.name} at term {m.term}, disk has {hs.term}")
        # A vote is safe once it is on disk, or once the disk holds a later term (the node can never act in
        # the vote's term again: a Ready may carry a grant for term T and the hard state of term T+1).
        if m.type == MT.VOTE_RESP and not m.reject and hs.term == m.term and hs.vote != m.to:
            _fail(f"persist before send: node {node.id} granted a vote to {m.to} in term {m.term} not on disk")
        if m.type == MT.VOTE and hs.term == m.term and hs.vote != node.id:
            _fail(f"persist before send: node {node.id} campaigned in term {m.term} without its own vote on disk")
        if m.type == MT.APPEND_RESP and not m.reject:
            if m.index > durable.last_index():
                _fail(f"persist before send: node {node.id} acknowledged {m.index}, disk ends at "
                      f"{durable.last_index()}")

    # --- the end of a run ------------------------------------------------------------------------------------
    def _final_leader(self) -> SimNode | None:
        """The leader of the highest term, if no member of its configuration leads anything else. A node that was
        removed without ever applying its removal may still believe it leads an old term (without CheckQuorum
        nothing tells it otherwise, and the cluster no longer talks to it); it is not a member, so it does not
        count, as in a deployment where the operator stops removed nodes."""
        leaders = [
            n for n in self.sim.nodes.values()
            if n.raw is not None and not n.removed and n.raw.raft.role == StateRole.LEADER
        ]
        if not leaders:
            return None
        leader = max(leaders, key=lambda n: n.raw.raft.term)
        members = set(leader.raw.raft.tracker.voters) | set(leader.raw.raft.tracker.learners)
        if any(n is not leader and n.id in members for n in leaders):
            return None
        return leader

    def _members(self, leader: SimNode) -> list[SimNode]:
        tracker = leader.raw.raft.tracker
        return [self.sim.nodes[i] for i in sorted(tracker.voters | tracker.learners)]

    def final_members(self) -> list[SimNode]:
        """The members of the final leader's configuration (after `converged()`)."""
        leader = self._final_leader()
        assert leader is not None
        return self._members(leader)

    def converged(self) -> bool:
        if any(c.waiting for c in self.sim.clients):
            return False
        leader = self._final_leader()
        if leader is None:
            return False
        raft = leader.raw.raft
        log = raft.raft_log
        if log.committed != log.last_index() or log.term(log.committed) != raft.term:
            return False
        for member in self._members(leader):
            # (A Ready in flight is fine: heartbeats keep one in flight at a fixed phase of the cycle forever.)
            if member.raw is None:
                return False
            if member.fsm.applied_index != log.committed or member.raw.raft.lead != leader.id:
                return False
        return True

    def check_final(self) -> None:
        leader = self._final_leader()
        assert leader is not None
        reference = leader.fsm.commands
        if len(set(reference)) != len(reference):
            _fail("a command was applied twice on the leader")
        for member in self._members(leader):
            if member.fsm.commands != reference:
                _fail(f"node {member.id} applied a different command sequence than leader {leader.id}")
        position = {cmd: k for k, cmd in enumerate(reference)}
        for client, seq in self.acknowledged:
            if (client, seq) not in position:
                _fail(f"acknowledged proposal {client}:{seq} is missing from the applied sequence")
        for client in self.sim.clients:
            mine = [s for c, s in reference if c == client.id]
            if mine != list(range(1, len(mine) + 1)):
                _fail(f"client {client.id}: applied sequence numbers are not 1..n in order: {mine[:20]}")

    def describe(self) -> str:
        parts = []
        for n in self.sim.nodes.values():
            if n.raw is None:
                parts.append(f"{n.id}: down")
                continue
            r = n.raw.raft
            parts.append(
                f"{n.id}{'(removed)' if n.removed else ''}: {r.role.name} term {r.term} lead {r.lead} "
                f"commit {r.raft_log.committed} last {r.raft_log.last_index()} applied {n.fsm.applied_index}"
            )
            if r.role == StateRole.LEADER:
                for pid, pr in sorted(r.tracker.progress.items()):
                    parts.append(
                        f"  progress {pid}: {pr.state.name} match {pr.match} next {pr.next} paused {pr.is_paused()}"
                        f" active {pr.recent_active} pending_snap {pr.pending_snapshot} learner {pr.is_learner}"
                    )
        waiting = [(c.id, c.seq, c.target) for c in self.sim.clients if c.waiting]
        return "; ".join(parts) + f"; waiting clients {waiting}"
