"""The deterministic cluster simulator (in the spirit of TigerBeetle's VOPR).

One seed fixes everything: a single ``random.Random(seed)`` drives the network, the disks, the faults, the
clients and the seeds of the nodes' own PRNGs, and the simulated clock is an integer. Replaying a seed replays the
run event for event.

A *step* is one event taken from the time-ordered queue: a node's tick, a message delivery, a disk write, an
fsync (after which the node may send and apply), a client proposal, a crash, a restart, a partition change or a
membership change. After every step the checker (checker.py) verifies the Raft safety properties.

Each run ends with a convergence phase: faults healed, crashed nodes restarted, clients finish their
outstanding requests, and every member must reach the same applied state containing every acknowledged
proposal exactly once, in one order.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from dataclasses import dataclass, field

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import ProposalDroppedError, StepError
from ddx_offchain.raft.driver import ReadyDriver
from ddx_offchain.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    Message,
    MessageType,
    StateRole,
    decode_conf_change,
)
from ddx_offchain.raft.rawnode import RawNode, Ready
from ddx_offchain.testing.sim.checker import Checker
from ddx_offchain.testing.sim.disk import SimDisk, WriteEntries, WriteHardState, WriteSnapshot
from ddx_offchain.testing.sim.exchange import ExchangeFSM, StackObserver, StackWorkload, check_acknowledged
from ddx_offchain.testing.sim.fsm import SessionFSM, SimulationFailure, encode_command

MT = MessageType

TICK_INTERVAL = 10  # nominal; each run of a node ticks every 8..12 units (clocks drift apart)
ELECTION_TICK = 8
HEARTBEAT_TICK = 2
SNAPSHOT_EVERY = 24  # applied entries between local snapshots
KEEP_AFTER_SNAPSHOT = 4  # entries kept behind a snapshot so slightly lagging followers still get appends
CLIENT_RETRY = 80  # time units before a client retries an unanswered request elsewhere
CONVERGENCE_LIMIT = 40_000  # events allowed for the final convergence phase


def replay_command(seed: int, steps: int, stack: bool = False) -> str:
    return f"python -m ddx_offchain.testing.sim {'--stack ' if stack else ''}--seed {seed} --steps {steps}"


@dataclass(slots=True)
class Options:
    steps: int = 2000
    nodes: int | None = None  # founding voters; None: 3 for even seeds, 5 for odd ones
    # PreVote / CheckQuorum; None: by seed, (seed // 2) % 4 picks (on, on), (on, off), (off, on), (off, off)
    pre_vote: bool | None = None
    check_quorum: bool | None = None
    new_nodes: int = 3  # nodes that may be added during a run (each gets a fresh id; ids are never reused)
    drop_rate: float = 0.03
    duplicate_rate: float = 0.02
    crash_rate: float = 0.002
    partition_rate: float = 0.003
    membership_rate: float = 0.003
    transfer_rate: float = 0.002
    read_rate: float = 0.01
    client_count: int = 8
    # Fault profile; None: by seed, (seed // 8) % 4 picks normal, normal, calm (a tenth of the faults: long
    # stable stretches with heavy traffic) or storm (three times the faults, 10% drops).
    profile: str | None = None
    trace: bool = False
    # The whole stack (exchange.py): each node runs the operator's state machine and engine instead of SessionFSM,
    # and the clients send signed trader requests and operator commands.
    stack: bool = False

    def apply_profile(self) -> None:
        if self.profile == "calm":
            self.crash_rate /= 10
            self.partition_rate /= 10
            self.drop_rate /= 10
        elif self.profile == "storm":
            self.crash_rate *= 3
            self.partition_rate *= 3
            self.drop_rate = 0.10


@dataclass(slots=True)
class SimNode:
    id: int
    disk: SimDisk
    fsm: SessionFSM
    raw: RawNode | None = None
    driver: ReadyDriver | None = None  # the production Ready driver (raft/driver.py) over this node's RawNode
    incarnation: int = 0
    persist_scheduled: bool = False
    since_snapshot: int = 0
    removed: bool = False
    tick_interval: int = TICK_INTERVAL

    @property
    def alive(self) -> bool:
        return self.raw is not None


@dataclass(slots=True)
class SimClient:
    id: int
    seq: int = 0
    waiting: bool = False
    target: int = 0
    sent_at: int = 0
    attempt: int = 0  # only the timer of the latest attempt is live
    acked: list[int] = field(default_factory=list)


class _SimLog:
    """LogStore over the simulated disk: a Ready's frame goes into the page cache, in order; the simulator's fsync
    event makes it durable and then tells the driver."""

    def __init__(self, sim: "Simulation", node: SimNode) -> None:
        self.sim = sim
        self.node = node

    def persist(self, ready: Ready) -> bool:
        disk = self.node.disk
        if ready.snapshot is not None:
            disk.write(WriteSnapshot(ready.snapshot))
        if ready.entries:
            disk.write(WriteEntries(ready.entries))
            self.sim.checker.on_entries_written(self.node, ready.entries)
        if ready.hard_state is not None:
            disk.write(WriteHardState(ready.hard_state))
        return not (disk.pending and ready.must_sync)


class _SimHandler:
    """ReadyHandler of a simulated node: the simulated network, the node's state machine, and the checker's
    hooks at each point of the cycle."""

    def __init__(self, sim: "Simulation", node: SimNode) -> None:
        self.sim = sim
        self.node = node

    def send(self, messages) -> None:
        for m in messages:
            self.sim.checker.check_persisted_before_send(self.node, m)
            self.sim._send(m)

    def on_soft_state(self, soft_state) -> None:
        pass  # the checker reads roles and terms from the core after every step

    def on_hard_state(self, hard_state) -> None:
        pass

    def restore(self, snapshot) -> None:
        self.node.fsm.restore(snapshot.data, snapshot.metadata.conf_state)
        self.sim.checker.on_snapshot_restored(self.node, snapshot)
        self.node.since_snapshot = 0

    def apply(self, entries) -> None:
        node, sim = self.node, self.sim
        fsm, raw = node.fsm, node.raw
        for entry in entries:
            if entry.type == EntryType.CONF_CHANGE:
                fsm.skip(entry.index)
                cc = decode_conf_change(entry.data)
                fsm.conf_state = raw.apply_conf_change(cc)
                sim._trace(f"{node.id} applied {cc.type.name} {cc.node_id} -> {fsm.conf_state}")
                if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == node.id:
                    node.removed = True
            else:
                answered = fsm.apply(entry.index, entry.data)
                if answered is not None:
                    sim._answer(node, *answered)
            sim.checker.on_applied(node, entry)
        node.since_snapshot += len(entries)

    def on_read_states(self, read_states) -> None:
        for read_state in read_states:
            self.sim.checker.on_read_confirmed(self.node, read_state)

    def after_advance(self) -> None:
        node, fsm = self.node, self.node.fsm
        self.sim.checker.serve_reads(node)
        if node.since_snapshot >= SNAPSHOT_EVERY and fsm.applied_index > node.disk.live.snapshot().metadata.index:
            node.disk.save_snapshot(fsm.applied_index, fsm.conf_state, fsm.snapshot_data(), KEEP_AFTER_SNAPSHOT)
            node.since_snapshot = 0


class Simulation:
    def __init__(self, seed: int, options: Options | None = None) -> None:
        self.seed = seed
        # A private copy: the seed fills in the choices left open (cluster size, PreVote/CheckQuorum, profile).
        self.options = dataclasses.replace(options) if options is not None else Options()
        self.rng = random.Random(seed)
        self.now = 0
        self.steps_done = 0
        self._queue: list[tuple[int, int, tuple]] = []
        self._seq = 0
        if self.options.nodes is None:
            self.options.nodes = 3 + 2 * (seed % 2)
        if self.options.profile is None:
            self.options.profile = ("normal", "normal", "calm", "storm")[(seed // 8) % 4]
            self.options.apply_profile()
        combo = (seed // 2) % 4
        if self.options.pre_vote is None:
            self.options.pre_vote = combo in (0, 1)
        if self.options.check_quorum is None:
            self.options.check_quorum = combo in (0, 2)
        founders = tuple(range(1, self.options.nodes + 1))
        self.founders = founders
        self.nodes: dict[int, SimNode] = {}
        self.next_id = self.options.nodes + 1
        self.cut: set[tuple[int, int]] = set()
        self.checker = Checker(self)
        self.clients = [SimClient(id=c + 1) for c in range(self.options.client_count)]
        self.converging = False
        self._read_seq = 0
        self.trace_lines: list[str] = []
        self.workload: StackWorkload | None = None
        self.observer: StackObserver | None = None
        if self.options.stack:
            self.workload = StackWorkload(seed, self.options.client_count)
            self.observer = StackObserver()
        for node_id in founders:
            self._create_node(node_id, founders)
        for client in self.clients:
            self._schedule(self.rng.randint(1, 50), ("propose", client.id))

    # --- scheduling ------------------------------------------------------------------------------------------
    def _schedule(self, delay: int, event: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, event))

    def _trace(self, text: str) -> None:
        if self.options.trace:
            self.trace_lines.append(f"[{self.steps_done} t={self.now}] {text}")

    # --- node lifecycle --------------------------------------------------------------------------------------
    def _create_node(self, node_id: int, founders: tuple[int, ...]) -> SimNode:
        if self.workload is not None:
            fsm: SessionFSM = ExchangeFSM(node_id, self.workload, self.observer)
        else:
            fsm = SessionFSM(ConfState())
        node = SimNode(id=node_id, disk=SimDisk(founders), fsm=fsm)
        self.nodes[node_id] = node
        self._start(node)
        return node

    def _start(self, node: SimNode) -> None:
        node.incarnation += 1
        disk = node.disk
        snap = disk.live.snapshot()
        conf_state = disk.live.initial_state()[1]
        node.fsm.restore(snap.data, conf_state)
        config = Config(
            id=node.id,
            election_tick=ELECTION_TICK,
            heartbeat_tick=HEARTBEAT_TICK,
            applied=snap.metadata.index,
            max_size_per_msg=12,  # tiny, so replication is split into many messages and acks arrive piecemeal
            max_inflight_msgs=4,
            max_committed_size_per_ready=16,  # committed entries are handed out a few at a time
            max_uncommitted_entries_size=1 << 12,
            pre_vote=self.options.pre_vote,
            check_quorum=self.options.check_quorum,
            seed=self.rng.getrandbits(64),
        )
        node.raw = RawNode(config, disk.live)
        node.driver = ReadyDriver(node.raw, _SimLog(self, node), _SimHandler(self, node))
        node.persist_scheduled = False
        node.since_snapshot = 0
        self.checker.on_start(node)
        node.tick_interval = self.rng.randint(TICK_INTERVAL - 2, TICK_INTERVAL + 2)
        self._schedule(self.rng.randint(1, node.tick_interval), ("tick", node.id, node.incarnation))

    def _crash(self, node: SimNode) -> None:
        survived = node.disk.crash(self.rng)
        self._trace(f"crash {node.id} ({survived} unsynced writes survived)")
        node.raw = None
        if node.driver is not None:
            node.driver.abandon()
        node.driver = None
        self.checker.on_crash(node)
        self._schedule(self.rng.randint(20, 400), ("restart", node.id))

    # --- the Ready loop --------------------------------------------------------------------------------------
    def _kick(self, node: SimNode) -> None:
        if node.raw is None:
            return
        # As the runtime does: what is committed and durable here is applied at once, even with a write in flight.
        if node.driver.apply_durable_committed():
            self.checker.serve_reads(node)
        if node.driver.in_flight is not None or node.persist_scheduled:
            return
        if node.raw.has_ready():
            node.persist_scheduled = True
            self._schedule(self.rng.randint(0, 2), ("persist", node.id, node.incarnation))

    def _persist(self, node: SimNode) -> None:
        node.persist_scheduled = False
        rd = node.driver.next_ready()
        if rd is None:
            return  # what made the node ready (committed entries) was applied meanwhile, outside a Ready
        node.driver.persist(rd)  # into the page cache; the fsync event makes it durable (or loses it in a crash)
        delay = self.rng.randint(1, 6) if node.disk.pending and rd.must_sync else 0
        self._schedule(delay, ("fsync", node.id, node.incarnation))

    def _fsync(self, node: SimNode) -> None:
        rd = node.driver.in_flight
        if rd.must_sync:
            node.disk.fsync()
        # else: like a runtime that trusts must_sync, leave the writes in the page cache (a later fsync flushes
        # them in order; a crash before that may lose them).
        self.checker.on_synced(node)
        node.driver.durable(rd)

    # --- network ---------------------------------------------------------------------------------------------
    def _send(self, m: Message) -> None:
        opts = self.options
        if self.converging:
            self._schedule(self.rng.randint(1, 8), ("deliver", m))
            return
        if (m.from_, m.to) in self.cut or self.rng.random() < opts.drop_rate:
            self._dropped(m)
            return
        copies = 2 if self.rng.random() < opts.duplicate_rate else 1
        for _ in range(copies):
            delay = self.rng.randint(1, 8) if self.rng.random() < 0.95 else self.rng.randint(20, 120)
            self._schedule(delay, ("deliver", m))

    def _dropped(self, m: Message) -> None:
        if m.type == MT.SNAPSHOT:
            sender = self.nodes.get(m.from_)
            if sender is not None and sender.raw is not None:
                sender.raw.report_snapshot(m.to, False)
                self._kick(sender)

    def _deliver(self, m: Message) -> None:
        target = self.nodes.get(m.to)
        if target is None or target.raw is None or (m.from_, m.to) in self.cut:
            self._dropped(m)
            return
        try:
            target.raw.step(m)
        except StepError:
            pass  # a response from a node that is not (or no longer) a member: ignored, as the API promises
        self._kick(target)
        if m.type == MT.SNAPSHOT:
            sender = self.nodes.get(m.from_)
            if sender is not None and sender.raw is not None:
                sender.raw.report_snapshot(m.to, True)
                self._kick(sender)

    # --- clients ---------------------------------------------------------------------------------------------
    def _leader_guess(self) -> int:
        alive = [n for n in self.nodes.values() if n.raw is not None and not n.removed]
        if not alive:
            return 0
        leaders = [n.id for n in alive if n.raw.raft.role == StateRole.LEADER]
        if leaders and self.rng.random() < 0.8:
            return max(leaders, key=lambda i: self.nodes[i].raw.raft.term)
        return self.rng.choice(alive).id

    def _propose(self, client: SimClient) -> None:
        if not client.waiting:
            if self.converging:
                return
            client.seq += 1
            client.waiting = True
        target_id = self._leader_guess()
        client.target = target_id
        client.sent_at = self.now
        client.attempt += 1
        retry_after = CLIENT_RETRY
        if target_id:
            node = self.nodes[target_id]
            try:
                payload = encode_command(client.id, client.seq) if self.workload is None else \
                    self.workload.payload(client.id, client.seq)
                node.raw.propose(payload)
            except ProposalDroppedError:
                retry_after = self.rng.randint(20, 60)
            self._kick(node)
        else:
            retry_after = self.rng.randint(20, 60)
        self._schedule(retry_after, ("retry", client.id, client.attempt))

    def _answer(self, node: SimNode, client_id: int, seq: int) -> None:
        client = self.clients[client_id - 1]
        if client.waiting and client.seq == seq and client.target == node.id:
            client.waiting = False
            client.acked.append(seq)
            self.checker.on_acknowledged(node, client_id, seq)
            self._schedule(self.rng.randint(1, 10), ("propose", client.id))

    # --- faults ----------------------------------------------------------------------------------------------
    def _random_fault(self) -> None:
        opts = self.options
        r = self.rng.random()
        members = [n for n in self.nodes.values() if not n.removed]
        if r < opts.crash_rate:
            alive = [n for n in members if n.raw is not None]
            if alive:
                self._crash(self.rng.choice(alive))
            return
        r -= opts.crash_rate
        if r < opts.partition_rate:
            ids = [n.id for n in members]
            was_cut = bool(self.cut)
            self.cut.clear()
            choice = self.rng.random()
            if was_cut and choice < 0.5:
                self._trace("heal")
                return
            leaders = [n.id for n in members if n.raw is not None and n.raw.raft.role == StateRole.LEADER]
            if choice < 0.3 and leaders:
                side = {self.rng.choice(leaders)}  # the classic: the leader alone on one side
                for a in ids:
                    for b in ids:
                        if (a in side) != (b in side):
                            self.cut.add((a, b))
                self._trace(f"isolate leader {sorted(side)}")
            elif choice < 0.75:
                self.rng.shuffle(ids)
                k = self.rng.randint(1, max(1, len(ids) // 2))
                side = set(ids[:k])
                for a in ids:
                    for b in ids:
                        if (a in side) != (b in side):
                            self.cut.add((a, b))
                self._trace(f"partition {sorted(side)} | rest")
            else:
                self._trace("heal")
            return
        r -= opts.partition_rate
        if r < opts.membership_rate:
            self._membership_change()
            return
        r -= opts.membership_rate
        if r < opts.transfer_rate:
            self._transfer_leadership()
            return
        r -= opts.transfer_rate
        if r < opts.read_rate:
            self._linearizable_read()

    def _transfer_leadership(self) -> None:
        leaders = [n for n in self.nodes.values() if n.raw is not None and n.raw.raft.role == StateRole.LEADER]
        if not leaders:
            return
        leader = self.rng.choice(leaders)
        voters = sorted(leader.raw.raft.tracker.voters - {leader.id})
        if voters:
            transferee = self.rng.choice(voters)
            self._trace(f"leader {leader.id} transfers leadership to {transferee}")
            leader.raw.transfer_leadership(transferee)
            self._kick(leader)

    def _linearizable_read(self) -> None:
        """Ask a random node for a ReadIndex read. Everything acknowledged before the request must be visible
        when the read is served (checked by the checker when the node's applied index reaches the read index)."""
        alive = [n for n in self.nodes.values() if n.raw is not None and not n.removed]
        if not alive:
            return
        node = self.rng.choice(alive)
        self._read_seq += 1
        ctx = b"read-%d" % self._read_seq
        self.checker.on_read_requested(node, ctx)
        node.raw.read_index(ctx)
        self._kick(node)

    def _membership_change(self) -> None:
        leaders = [n for n in self.nodes.values() if n.raw is not None and n.raw.raft.role == StateRole.LEADER]
        if not leaders:
            return
        leader = max(leaders, key=lambda n: n.raw.raft.term)
        tracker = leader.raw.raft.tracker
        voters, learners = sorted(tracker.voters), sorted(tracker.learners)
        choice = self.rng.random()
        if learners:
            cc = ConfChange(ConfChangeType.ADD_VOTER, self.rng.choice(learners))
        elif choice < 0.5 and len(voters) > 3:
            cc = ConfChange(ConfChangeType.REMOVE_NODE, self.rng.choice(voters))
        elif self.next_id <= self.options.nodes + self.options.new_nodes and len(voters) < 6:
            cc = ConfChange(ConfChangeType.ADD_LEARNER, self.next_id)
        elif len(voters) > 3:
            cc = ConfChange(ConfChangeType.REMOVE_NODE, self.rng.choice(voters))
        else:
            return
        try:
            leader.raw.propose_conf_change(cc)
        except ProposalDroppedError as exc:
            self._trace(f"conf change {cc.type.name} {cc.node_id} refused: {exc}")
            return
        self._trace(f"leader {leader.id} proposed {cc.type.name} {cc.node_id}")
        if cc.type == ConfChangeType.ADD_LEARNER:
            # The new node starts empty, knowing no membership: it learns everything from the leader.
            self._create_node(self.next_id, ())
            self.next_id += 1
        self._kick(leader)

    # --- main loop -------------------------------------------------------------------------------------------
    def _handle(self, event: tuple) -> SimNode | None:
        kind = event[0]
        if kind == "deliver":
            m = event[1]
            self._deliver(m)
            return self.nodes.get(m.to)
        if kind in ("tick", "persist", "fsync"):
            node = self.nodes[event[1]]
            if node.raw is None or node.incarnation != event[2]:
                return None  # belongs to a crashed incarnation
            if kind == "tick":
                node.raw.tick()
                self._schedule(node.tick_interval, ("tick", node.id, node.incarnation))
            elif kind == "persist":
                self._persist(node)
            else:
                self._fsync(node)
            self._kick(node)
            return node
        if kind == "propose":
            self._propose(self.clients[event[1] - 1])
            return None
        if kind == "retry":
            client = self.clients[event[1] - 1]
            if client.waiting and client.attempt == event[2]:
                self._propose(client)
            return None
        if kind == "restart":
            node = self.nodes[event[1]]
            if node.raw is None:
                self._trace(f"restart {node.id}")
                self._start(node)
                return node
            return None
        raise SimulationFailure(f"unknown event {kind}")

    def _is_stale(self, event: tuple) -> bool:
        """Timers that were superseded: skipping them is not a step (it would only dilute the run)."""
        kind = event[0]
        if kind == "retry":
            client = self.clients[event[1] - 1]
            return not client.waiting or client.attempt != event[2]
        if kind in ("tick", "persist", "fsync"):
            node = self.nodes[event[1]]
            return node.raw is None or node.incarnation != event[2]
        return False

    def step(self) -> None:
        when, _, event = heapq.heappop(self._queue)
        while self._is_stale(event):
            when, _, event = heapq.heappop(self._queue)
        self.now = when
        if not self.converging:
            self._random_fault()
        touched = self._handle(event)
        self.steps_done += 1
        if touched is not None and touched.raw is not None:
            self.checker.check_node(touched)

    def run(self) -> None:
        try:
            for _ in range(self.options.steps):
                self.step()
            self._converge()
            if self.workload is not None:
                check_acknowledged(self)
        except (SimulationFailure, AssertionError) as exc:
            raise SimulationFailure(
                f"seed {self.seed}: {exc}\n  replay: {self.replay()}"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - any crash of the core is a finding; report it replayably
            raise SimulationFailure(
                f"seed {self.seed}: {type(exc).__name__}: {exc}\n"
                f"  replay: {self.replay()}"
            ) from exc

    def replay(self) -> str:
        return replay_command(self.seed, self.options.steps, self.options.stack)

    def _converge(self) -> None:
        self.converging = True
        self.cut.clear()
        for node in self.nodes.values():
            if node.raw is None:
                self._start(node)
        for k in range(CONVERGENCE_LIMIT):
            self.step()
            if self.checker.converged():
                self.checker.check_final()
                return
        raise SimulationFailure(f"no convergence within {CONVERGENCE_LIMIT} events after healing: "
                                f"{self.checker.describe()}")
