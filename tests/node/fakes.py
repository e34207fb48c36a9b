"""Test doubles: an in-memory sequencer (Raft stand-in) and a recording engine (engine stand-in).

They exist only to test the node and API in isolation; the real Raft runtime and engine replace them in the
cluster tests.
"""

from __future__ import annotations

import asyncio

import msgspec

from ddx_offchain.node.sequencer import NotLeaderError, SequencingError
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

    def _update(self, request_index: int, kind: str, trader, market, data: dict) -> ExecutionUpdate:
        self.ordinal += 1
        return ExecutionUpdate(self.ordinal, request_index, kind, () if trader is None else (trader,), market, data)

    def execute_request(self, signed, request_index: int) -> list[ExecutionUpdate]:
        request = signed.request
        self.executed.append(signed.request_hash)
        self.root = keccak256(self.root + signed.request_hash)
        market = getattr(request, "market", None)
        if isinstance(request, PlaceOrder):
            self.orders.append((request.trader, request.market, request.side, request.price, request.size))
        return [
            self._update(
                request_index,
                "accepted",
                request.trader,
                market,
                {"type": request.PRIMARY_TYPE, "requestHash": "0x" + signed.request_hash.hex()},
            )
        ]

    def execute_operator_command(self, payload: bytes, request_index: int) -> list[ExecutionUpdate]:
        self.root = keccak256(self.root + payload)
        if payload == b"epoch":
            self.current_epoch += 1
        return [self._update(request_index, "operator", None, None, {"payload": payload.hex()})]

    def epoch(self) -> int:
        return self.current_epoch

    def last_ordinal(self) -> int:
        return self.ordinal

    def state_root(self) -> bytes:
        return self.root

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_State(self.ordinal, self.root, self.current_epoch, self.orders))

    def restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=_State)
        self.ordinal, self.root, self.current_epoch = state.ordinal, state.root, state.epoch
        self.orders = [tuple(o) for o in state.orders]

    # ExchangeView
    def book(self, market: bytes) -> dict | None:
        if market == b"\xff" * 32:
            return None
        side = lambda s: [[str(p), str(z)] for t, m, sd, p, z in self.orders if m == market and sd == s]
        return {"market": "0x" + market.hex(), "bids": side(0), "asks": side(1)}

    def trader_state(self, trader: bytes) -> dict:
        mine = [o for o in self.orders if o[0] == trader]
        return {
            "strategies": [],
            "positions": [],
            "balances": [],
            "openOrders": [{"market": "0x" + m.hex(), "side": s, "price": str(p), "size": str(z)} for _, m, s, p, z in mine],
        }

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        return {"root": "0x" + self.root.hex(), "epoch": self.current_epoch if epoch is None else epoch}

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        return {"root": "0x" + self.root.hex(), "epoch": self.current_epoch if epoch is None else epoch}
