"""Test doubles: an in-memory sequencer (Raft stand-in) and a recording engine (engine stand-in).

They exist only to test the node and API in isolation; the real Raft runtime and engine replace them in the
cluster tests.
"""

from __future__ import annotations

import asyncio

import msgspec

from ddx_offchain.engine.updates import Accepted
from ddx_offchain.node import views
from ddx_offchain.node.account import AccountView
from ddx_offchain.node.sequencer import NotLeaderError
from ddx_offchain.node.state_machine import ExecutionUpdate
from ddx_offchain.protocol.hashing import keccak256
from ddx_offchain.protocol.requests import PlaceOrder


class InMemorySequencer:
    """Commits every proposal at once, in order, and hands it to the sink (one node, no replication)."""

    def __init__(self, sink, node_id: int = 1) -> None:
        self.sink = sink
        self.node_id = node_id
        self.log: list[bytes] = []
        self.leader = True
        self.fail_next: Exception | None = None
        self.applied = 0
        self.proposed = 0

    def append(self, data: bytes) -> int:
        """Commit an entry directly, as a (possibly faulty) leader would have."""
        self.log.append(data)
        index = len(self.log)
        self.sink.apply_committed(index, data)
        self.applied = index
        return index

    async def propose(self, data: bytes) -> int:
        if not self.leader:
            raise NotLeaderError(2)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.proposed += 1
        await asyncio.sleep(0)
        return self.append(data)

    def is_leader(self) -> bool:
        return self.leader

    def leader_id(self) -> int | None:
        return self.node_id if self.leader else 2

    def applied_index(self) -> int:
        return self.applied

    def commit_index(self) -> int:
        return len(self.log)

    def status(self) -> dict:
        return {"role": "leader" if self.leader else "follower", "term": 1, "lastIndex": len(self.log)}


class _State(msgspec.Struct, array_like=True):
    ordinal: int
    root: bytes
    epoch: int
    orders: list[tuple[bytes, bytes, int, int, int]]


class RecordingEngine:
    """Accepts every request, one 'accepted' update each; its root hashes the whole command sequence."""

    def __init__(self) -> None:
        self.ordinal = 0
        self.root = b"\x00" * 32
        self.current_epoch = 0
        self.orders: list[tuple[bytes, bytes, int, int, int]] = []  # (trader, market, side, price, size)
        self.executed: list[bytes] = []

    def _accepted(self, request_index: int, request_id: bytes, command: str, trader, market) -> ExecutionUpdate:
        self.ordinal += 1
        update = Accepted(self.ordinal, request_id, command)
        return ExecutionUpdate(request_index, update, () if trader is None else (trader,), market)

    def execute_request(self, signed, request_index: int) -> list[ExecutionUpdate]:
        request = signed.request
        self.executed.append(signed.request_hash)
        self.root = keccak256(self.root + signed.request_hash)
        market = getattr(request, "market", None)
        if isinstance(request, PlaceOrder):
            self.orders.append((request.trader, request.market, request.side, request.price, request.size))
        return [self._accepted(request_index, signed.request_hash, request.PRIMARY_TYPE, request.trader, market)]

    def agent_problem(self, trader: bytes, agent: bytes, strategy: bytes, timestamp: int) -> str | None:
        return "signer_mismatch"  # no approvals: a request signed by anyone but its trader is refused

    def execute_operator_command(self, payload: bytes, request_index: int) -> list[ExecutionUpdate]:
        self.root = keccak256(self.root + payload)
        if payload == b"epoch":
            self.current_epoch += 1
        return [self._accepted(request_index, keccak256(payload), "operator", None, None)]

    def epoch(self) -> int:
        return self.current_epoch

    def last_ordinal(self) -> int:
        return self.ordinal

    def state_root(self) -> bytes:
        return self.root

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_State(self.ordinal, self.root, self.current_epoch, self.orders))

    def capture(self):
        data = self.snapshot()
        return lambda: data

    def restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=_State)
        self.ordinal, self.root, self.current_epoch = state.ordinal, state.root, state.epoch
        self.orders = [tuple(o) for o in state.orders]

    # ExchangeView (typed, as node/views.py; the API renders them)
    def book(self, market: bytes) -> views.BookView | None:
        if market == b"\xff" * 32:
            return None
        side = lambda s: [views.BookLevel(p, z) for t, m, sd, p, z in self.orders if m == market and sd == s]
        return views.BookView(market, side(0), side(1), 0, 0)

    def trader(self, trader: bytes) -> views.TraderView:
        mine = [o for o in self.orders if o[0] == trader]
        orders = [views.OrderView(b"\x00" * 32, b"\x00" * 32, m, s, 0, p, z, z, False) for _, m, s, p, z in mine]
        return views.TraderView(trader, bool(mine), [], [], [], orders, [])

    def market(self, market: bytes) -> views.MarketView | None:
        return None

    def markets(self) -> list[views.MarketView]:
        return []

    def open_order(self, order_hash=None, *, trader=None, strategy=None, client_order_id=None):
        return None

    def account(self, trader: bytes) -> AccountView:
        return AccountView(trader, False, [])

    def market_data_seed(self) -> views.MarketDataSeed:
        return views.MarketDataSeed(self.ordinal, 0, [], [])

    async def prepare_proofs(self, epoch: int | None) -> None:
        return None

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> views.WithdrawalProof:
        raise views.ProofUnavailable("the recording engine keeps no tree", reason="no_frozen_epoch")

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> views.BalanceProof:
        raise views.ProofUnavailable("the recording engine keeps no tree", reason="no_frozen_epoch")
