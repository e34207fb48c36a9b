"""Whole-stack simulation: every simulated node's application is the operator's real replicated state machine.

With `Options(stack=True)` the simulator (simulator.py) runs, on each node, `ExchangeStateMachine` over
`EngineAdapter` over `Engine` — the code `ddx node` runs — fed the same Raft log under the same faults (crashes,
partitions, drops, duplicates, disk faults, membership changes, snapshots). The clients send what operators and
traders send: client 1 is the operator feed (a chain block with every trader's deposit, index prices, sequenced
time, epoch advances), the others are traders placing crossing orders, cancelling, modifying and withdrawing,
each an EIP-712-signed request exactly as a wallet signs it. A client retries the same bytes after a timeout, as
the SDK does, so the same request may commit twice.

A proposal is `b"<client>:<seq>:" + log entry` (docs/protocol.md §7.3): the header keeps the simulator's own
per-client bookkeeping, the entry is what the node's state machine applies. After every applied entry, on every
node, the stack checks:

- **one state root per applied index**: every node that applies log index i reaches the same engine state root
  (and a node restored from a snapshot at i has the root every other node had at i);
- **conservation of collateral**: for every token, deposits = Σ over accounts (collateral − cost basis) + fees +
  withdrawable (`Engine.ledger_imbalance()` is zero);
- **exactly once**: a trader request (trader, nonce) is sequenced at most once on a node; a retry of the same
  bytes is applied as `duplicate` of the original. At the end, every acknowledged trader request is sequenced,
  with its own request hash, on every converged node.

The simulator's Raft checks (checker.py) keep running beside these. A failure is a `SimulationFailure` whose
message ends with the replay command (`python -m ddx_offchain.testing.sim --stack --seed N --steps M`).
"""

from __future__ import annotations

import random

import msgspec

from ...deployment.genesis import example_genesis, parse_genesis
from ...engine import commands as ec
from ...engine.engine import Engine
from ...node.engine_adapter import EngineAdapter
from ...node.state_machine import DUPLICATE, SEQUENCED, ExchangeStateMachine
from ...protocol.eip712 import Domain, address_of
from ...protocol.requests import (
    ENTRY_OPERATOR_COMMAND,
    CancelAll,
    ModifyOrder,
    PlaceOrder,
    WithdrawIntent,
    encode_entry,
    forced_fields,
    market_id,
    sign_request,
    strategy_id,
)
from ...raft.messages import ConfState
from .fsm import SessionFSM, SimulationFailure

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
TOKEN = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
TOKEN_BYTES = bytes.fromhex(TOKEN[2:])
ETHP = market_id("ETHP")
MAIN = strategy_id("main")
OPERATOR_CLIENT = 1
T0 = 1_700_000_000_000  # request timestamps: T0 + seq ms, all inside one replay window
DOLLAR = 10**6
CONTRACT = 1_000_000  # ETHP sizes have 6 decimals
DEPOSIT = 100_000 * DOLLAR


class StackWorkload:
    """What each (client, seq) proposes: a deterministic function of the seed, built once (retries resend it)."""

    def __init__(self, seed: int, clients: int) -> None:
        self.seed = seed
        self.genesis = parse_genesis(example_genesis(TOKEN))
        rng = random.Random(f"stack-keys-{seed}")
        self.keys = {c: rng.randbytes(31).rjust(32, b"\x01") for c in range(2, clients + 1)}
        self.traders = {c: address_of(k) for c, k in self.keys.items()}
        self._payloads: dict[tuple[int, int], bytes] = {}
        self.trader_requests: dict[tuple[int, int], tuple[bytes, int, bytes]] = {}  # -> (trader, nonce, hash)
        self._epochs = 0

    def payload(self, client: int, seq: int) -> bytes:
        key = (client, seq)
        data = self._payloads.get(key)
        if data is None:
            entry = self._operator_entry(seq) if client == OPERATOR_CLIENT else self._trader_entry(client, seq)
            data = self._payloads[key] = b"%d:%d:" % key + entry
        return data

    def _operator_entry(self, seq: int) -> bytes:
        rid = b"stack-operator".ljust(24, b"\x00") + seq.to_bytes(8, "big")
        if seq == 1:
            deposits = tuple(
                ec.Deposit(i, trader, MAIN, TOKEN_BYTES, DEPOSIT) for i, trader in enumerate(self.traders.values(), 1)
            )
            command = ec.ChainBlock(rid, 1, b"\x0b" * 32, deposits)
        elif seq % 4 == 0:
            self._epochs += 1  # the operator client's commands apply in seq order: this is the next epoch
            command = ec.AdvanceEpoch(rid, self._epochs)
        elif seq % 4 == 3:
            command = ec.AdvanceTime(rid, T0 + seq * 3_600_000)  # an hour a step: funding intervals pass
        elif seq % 8 == 5:
            command = self._forced_block(rid, seq)
        else:
            rng = random.Random(f"stack-price-{self.seed}-{seq}")
            command = ec.IndexPrices(rid, (ec.IndexPrice(ETHP, rng.randrange(1_700, 2_300) * DOLLAR),))
        return bytes([ENTRY_OPERATOR_COMMAND]) + ec.encode_command(command)

    def _forced_block(self, rid: bytes, seq: int) -> ec.ChainBlock:
        """A chain block carrying one forced request from L1 (withdraw, cancel-all, or a reduce-only market close),
        forced seq k for the k-th such step; every deposit came in block 1, so it follows all of them."""
        rng = random.Random(f"stack-forced-{self.seed}-{seq}")
        trader = rng.choice(list(self.traders.values()))
        choice = rng.randrange(3)
        if choice == 0:
            request = WithdrawIntent(trader, MAIN, TOKEN_BYTES, rng.randrange(1, 5_000) * DOLLAR, 0, 0)
        elif choice == 1:
            request = CancelAll(trader, MAIN, ETHP, 0, 0)
        else:
            request = PlaceOrder(trader, MAIN, ETHP, rng.randrange(2), 3, 0, rng.randrange(1, 40) * CONTRACT // 10, True, 0, 0)
        request_type, fields = forced_fields(request)
        forced = ec.ForcedRequest.of((seq - 5) // 8 + 1, len(self.traders), trader, request_type, fields)
        return ec.ChainBlock(rid, seq + 1, seq.to_bytes(32, "big"), (), (forced,))

    def _trader_entry(self, client: int, seq: int) -> bytes:
        rng = random.Random(f"stack-order-{self.seed}-{client}-{seq}")
        trader, key = self.traders[client], self.keys[client]
        nonce, timestamp = seq, T0 + seq
        roll = rng.random()
        price = rng.randrange(1_900, 2_100) * DOLLAR
        if roll < 0.65 or seq < 3:
            side, kind = rng.randrange(2), rng.choice((0, 0, 1, 2))
            size = rng.randrange(1, 40) * CONTRACT // 10
            request = PlaceOrder(trader, MAIN, ETHP, side, kind, price, size, rng.random() < 0.1, nonce, timestamp)
        elif roll < 0.75:
            earlier = self.trader_requests.get((client, rng.randrange(1, seq)))
            order = earlier[2] if earlier else b"\x01" * 32
            request = ModifyOrder(trader, MAIN, ETHP, order, price, rng.randrange(1, 20) * CONTRACT // 10, nonce, timestamp)
        elif roll < 0.85:
            request = CancelAll(trader, MAIN, ETHP, nonce, timestamp)
        else:
            request = WithdrawIntent(trader, MAIN, TOKEN_BYTES, rng.randrange(1, 2_000) * DOLLAR, nonce, timestamp)
        signed = sign_request(request, DOMAIN, key)
        self.trader_requests[(client, seq)] = (trader, nonce, signed.request_hash)
        return encode_entry(signed)


class StackObserver:
    """What all nodes of one run share: the state root each applied log index reached."""

    def __init__(self) -> None:
        self.roots: dict[int, bytes] = {}
        self.checks = 0

    def root_at(self, node_id: int, index: int, root: bytes) -> None:
        self.checks += 1
        known = self.roots.setdefault(index, root)
        if known != root:
            raise SimulationFailure(
                f"state roots diverge at log index {index}: node {node_id} has 0x{root.hex()}, another 0x{known.hex()}"
            )


class _Snapshot(msgspec.Struct, array_like=True):
    session: bytes  # SessionFSM's part (the simulator's own bookkeeping)
    machine: bytes  # ExchangeStateMachine.snapshot(): what a real node puts in its Raft snapshot
    sequenced: list[tuple[bytes, int]]


class ExchangeFSM(SessionFSM):
    """SessionFSM's interface (what the simulator and its checker drive) over the operator's state machine."""

    def __init__(self, node_id: int, workload: StackWorkload, observer: StackObserver) -> None:
        super().__init__(ConfState())
        self.node_id = node_id
        self.workload = workload
        self.observer = observer
        self.machine = self._fresh_machine()
        self.sequenced: set[tuple[bytes, int]] = set()  # (trader, nonce) this node's state machine sequenced
        self.duplicates = 0  # retried bytes committed again and applied as duplicates

    def _fresh_machine(self) -> ExchangeStateMachine:
        return ExchangeStateMachine(DOMAIN, EngineAdapter(Engine(self.workload.genesis)))

    @property
    def engine(self) -> Engine:
        return self.machine.engine.engine

    def apply(self, index: int, data: bytes) -> tuple[int, int] | None:
        if not data:
            super().apply(index, data)
            self.machine.apply(index, b"")  # the leader's empty entry: the node's state machine sees it too
            return None
        client_s, seq_s, entry = data.split(b":", 2)
        answered = super().apply(index, client_s + b":" + seq_s)
        applied = self.machine.apply(index, entry)
        if applied is None:
            raise SimulationFailure(f"node {self.node_id}: entry {index} was not applied as a request")
        if applied.sender is not None:
            key = (applied.sender, applied.nonce)
            if applied.status == SEQUENCED:
                if key in self.sequenced:
                    raise SimulationFailure(f"node {self.node_id}: request {key[1]} of 0x{key[0].hex()} sequenced twice")
                self.sequenced.add(key)
            elif applied.status == DUPLICATE:
                if key not in self.sequenced:
                    raise SimulationFailure(f"node {self.node_id}: entry {index} is a duplicate of nothing sequenced")
                self.duplicates += 1
        self._check_state(index)
        return answered

    def _check_state(self, index: int) -> None:
        self.observer.root_at(self.node_id, index, self.engine.state_root())
        imbalance = {token.hex(): v for token, v in self.engine.ledger_imbalance().items() if v}
        if imbalance:
            raise SimulationFailure(f"node {self.node_id}: collateral not conserved after log index {index}: {imbalance}")

    def skip(self, index: int) -> None:
        super().skip(index)

    def snapshot_data(self) -> bytes:
        return msgspec.msgpack.encode(
            _Snapshot(super().snapshot_data(), self.machine.snapshot(), sorted(self.sequenced))
        )

    def restore(self, data: bytes, conf_state: ConfState) -> None:
        if not data:
            super().restore(b"", conf_state)
            self.machine = self._fresh_machine()
            self.sequenced = set()
            return
        snap = msgspec.msgpack.decode(data, type=_Snapshot)
        super().restore(snap.session, conf_state)
        self.machine = self._fresh_machine()
        self.machine.restore(snap.machine)
        self.sequenced = {(bytes(t), n) for t, n in snap.sequenced}
        if self.machine.last_log_index:
            self._check_state(self.machine.last_log_index)


def check_acknowledged(sim) -> int:
    """After convergence: every acknowledged trader request is sequenced, with its own hash, on every member.
    Returns how many acknowledged trader requests were checked."""
    workload: StackWorkload = sim.workload
    acked = [(c.id, seq) for c in sim.clients if c.id != OPERATOR_CLIENT for seq in c.acked]
    members = sim.checker.final_members()  # the final configuration, as the Raft checks see it
    for node in members:
        fsm: ExchangeFSM = node.fsm
        for client, seq in acked:
            trader, nonce, request_hash = workload.trader_requests[(client, seq)]
            seen = fsm.machine.seen(trader, nonce)
            if (trader, nonce) not in fsm.sequenced or seen is None or seen.request_hash != request_hash:
                raise SimulationFailure(
                    f"node {node.id}: acknowledged request {nonce} of client {client} is not sequenced exactly once"
                )
    return len(acked)
