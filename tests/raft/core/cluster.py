"""A tiny synchronous cluster for scenario tests: RawNodes over MemoryStorage, a FIFO network that can cut links.

Each node handles its Ready exactly as a runtime must (persist, then send, then apply, then advance), so the
scenarios exercise the real RawNode path, not the Raft internals alone.
"""

from __future__ import annotations

from collections import deque

from ddx_offchain.raft.core.config import Config
from ddx_offchain.raft.core.errors import StepError
from ddx_offchain.raft.messages import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    StateRole,
    decode_conf_change,
)
from ddx_offchain.raft.rawnode import RawNode
from ddx_offchain.raft.storage import MemoryStorage


class TestNode:
    __test__ = False

    def __init__(self, node: RawNode, storage: MemoryStorage) -> None:
        self.node = node
        self.storage = storage
        self.applied: list[Entry] = []
        self.read_states: list = []
        self.conf_state = storage.initial_state()[1]

    @property
    def raft(self):
        return self.node.raft


def make_storage(
    voters: tuple[int, ...],
    learners: tuple[int, ...] = (),
    terms: list[int] | None = None,
    hard_state: HardState | None = None,
) -> MemoryStorage:
    storage = MemoryStorage(ConfState(voters=voters, learners=learners))
    if terms:
        storage.append([Entry(term=t, index=i + 1, data=f"e{i + 1}".encode()) for i, t in enumerate(terms)])
    if hard_state is not None:
        storage.set_hard_state(hard_state)
    return storage


class Cluster:
    def __init__(
        self,
        ids: tuple[int, ...] = (1, 2, 3),
        *,
        learners: tuple[int, ...] = (),
        storages: dict[int, MemoryStorage] | None = None,
        pre_vote: bool = True,
        check_quorum: bool = True,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        **config_kwargs,
    ) -> None:
        self.nodes: dict[int, TestNode] = {}
        self.config_kwargs = dict(
            pre_vote=pre_vote,
            check_quorum=check_quorum,
            election_tick=election_tick,
            heartbeat_tick=heartbeat_tick,
            **config_kwargs,
        )
        self.cut_links: set[tuple[int, int]] = set()
        self.drop_types: set[MessageType] = set()
        self.queue: deque[Message] = deque()
        self.delivered: list[Message] = []
        storages = storages or {}
        for node_id in ids + learners:
            storage = storages.get(node_id) or make_storage(ids, learners)
            self.add_node(node_id, storage)

    def add_node(self, node_id: int, storage: MemoryStorage) -> TestNode:
        config = Config(id=node_id, seed=node_id, **self.config_kwargs)
        node = TestNode(RawNode(config, storage), storage)
        self.nodes[node_id] = node
        return node

    def raft(self, node_id: int):
        return self.nodes[node_id].raft

    # --- network ---------------------------------------------------------------------------------------------
    def cut(self, a: int, b: int) -> None:
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut(node_id, other)

    def heal(self) -> None:
        self.cut_links.clear()
        self.drop_types.clear()

    def handle_ready(self, node_id: int) -> list[Message]:
        tn = self.nodes[node_id]
        out: list[Message] = []
        while tn.node.has_ready():
            rd = tn.node.ready()
            if rd.snapshot is not None:
                tn.storage.apply_snapshot(rd.snapshot)
            tn.storage.append(rd.entries)
            if rd.hard_state is not None:
                tn.storage.set_hard_state(rd.hard_state)
            out.extend(rd.messages)
            if rd.snapshot is not None:
                tn.applied = [Entry(term=rd.snapshot.metadata.term, index=rd.snapshot.metadata.index, data=b"<snap>")]
                tn.conf_state = rd.snapshot.metadata.conf_state
            for e in rd.committed_entries:
                tn.applied.append(e)
                if e.type == EntryType.CONF_CHANGE:
                    tn.conf_state = tn.node.apply_conf_change(decode_conf_change(e.data))
            tn.read_states.extend(rd.read_states)
            tn.node.advance(rd)
        return out

    def settle(self, max_messages: int = 100_000) -> None:
        """Process Readies and deliver messages until nothing moves."""
        for _ in range(max_messages):
            for node_id in sorted(self.nodes):
                self.queue.extend(self.handle_ready(node_id))
            if not self.queue:
                return
            m = self.queue.popleft()
            if (m.from_, m.to) in self.cut_links or m.type in self.drop_types or m.to not in self.nodes:
                continue
            self.delivered.append(m)
            try:
                self.nodes[m.to].node.step(m)
            except StepError:
                pass
        raise AssertionError("cluster did not settle")

    # --- driving ---------------------------------------------------------------------------------------------
    def campaign(self, node_id: int) -> None:
        self.nodes[node_id].node.campaign()
        self.settle()

    def tick(self, node_id: int, times: int = 1) -> None:
        for _ in range(times):
            self.nodes[node_id].node.tick()
            self.settle()

    def tick_all(self, times: int = 1) -> None:
        for _ in range(times):
            for node_id in sorted(self.nodes):
                self.nodes[node_id].node.tick()
            self.settle()

    def propose(self, node_id: int, data: bytes) -> None:
        self.nodes[node_id].node.propose(data)
        self.settle()

    def propose_conf_change(self, node_id: int, cc: ConfChange) -> None:
        self.nodes[node_id].node.propose_conf_change(cc)
        self.settle()

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.raft.role == StateRole.LEADER]

    def leader(self) -> int:
        leaders = self.leaders()
        assert len(leaders) == 1, leaders
        return leaders[0]

    def log_terms(self, node_id: int) -> list[int]:
        log = self.raft(node_id).raft_log
        return [log.term(i) for i in range(log.first_index(), log.last_index() + 1)]
