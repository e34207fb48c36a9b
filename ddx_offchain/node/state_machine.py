"""The replicated state machine every operator applies committed log entries to (docs/protocol.md §7.4).

It sits between Raft and the engine: it decodes each entry, re-verifies the trader's signature (so a faulty leader
cannot inject requests), enforces the replay window and (trader, nonce) uniqueness with logged data only, assigns
request indexes, and hands what survives to the engine. Pure and deterministic: no asyncio, no clock, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from ..engine.updates import Update
from ..errors import DdxError
from ..protocol.eip712 import Domain, DomainCache
from ..protocol.errors import ProtocolError
from ..protocol.requests import (
    ENTRY_OPERATOR_COMMAND,
    ENTRY_TRADER_REQUEST,
    REPLAY_WINDOW_MS,
    RequestRejected,
    SignedRequest,
    decode_entry,
    verify_request,
)

MAX_PREVERIFIED = 100_000
SEQUENCED = "sequenced"  # handed to the engine (which accepted or rejected it: see its updates)
DUPLICATE = "duplicate"  # (trader, nonce) already sequenced inside the window: the original's receipt applies
REFUSED = "refused"  # never reached the engine (malformed, bad signature, expired)


@dataclass(frozen=True, slots=True)
class ExecutionUpdate:
    """One engine update (typed, with its global ordinal) and where it goes: `traders`/`market` route it to the
    WebSocket feeds. It stays typed through feeds and history; the API renders it as JSON (api/render.py)."""

    request_index: int
    update: Update
    traders: tuple[bytes, ...]  # every trader the update concerns (a fill: maker and taker)
    market: bytes | None

    @property
    def ordinal(self) -> int:
        return self.update.ordinal

    @property
    def kind(self) -> str:
        """The update's type name (its JSON `type` tag), e.g. "Fill"."""
        return type(self.update).__name__


class CommandRefused(DdxError):
    """An operator-command entry the engine cannot take at all (malformed, or not an operator command)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason=reason)


class ExecutionEngine(Protocol):
    """What the state machine needs from the engine (the adapter in node/engine_adapter.py provides it)."""

    def execute_request(self, signed: SignedRequest, request_index: int) -> list[ExecutionUpdate]: ...

    def execute_operator_command(self, payload: bytes, request_index: int) -> list[ExecutionUpdate]: ...

    def epoch(self) -> int: ...

    def last_ordinal(self) -> int: ...

    def state_root(self) -> bytes: ...

    def snapshot(self) -> bytes: ...

    def capture(self) -> Callable[[], bytes]:
        """snapshot() in two steps: the state taken now (cheap), encoded when the result is called (any thread)."""
        ...

    def restore(self, data: bytes) -> None: ...

    def agent_problem(self, trader: bytes, agent: bytes, strategy: bytes, timestamp: int) -> str | None:
        """Why `agent` may not sign this trading request of `trader`'s now (engine state), or None."""
        ...


@dataclass(frozen=True, slots=True)
class AppliedEntry:
    """The outcome of one committed entry, as every node computes it."""

    request_index: int
    log_index: int
    entry: bytes
    status: str
    epoch: int
    request_hash: bytes | None = None
    sender: bytes | None = None  # who signed: the trader, or an agent of the trader's; `nonce` is in its nonce space
    nonce: int | None = None
    reason: str | None = None
    duplicate_of: int | None = None
    updates: list[ExecutionUpdate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SeenRequest:
    timestamp: int
    request_index: int
    request_hash: bytes
    epoch: int


class _Snapshot(msgspec.Struct, array_like=True):
    next_request_index: int
    last_log_index: int
    high_water_ms: int
    seen: list[tuple[bytes, int, int, int, bytes, int]]
    engine: bytes


class ExchangeStateMachine:
    """apply(log_index, entry) -> AppliedEntry; snapshot()/restore() include the replay-window state."""

    def __init__(self, domain: Domain, engine: ExecutionEngine) -> None:
        self.domain = DomainCache(domain)
        self.engine = engine
        self.next_request_index = 1
        self.last_log_index = 0
        self.high_water_ms = 0  # highest request timestamp applied so far
        self._seen: dict[tuple[bytes, int], SeenRequest] = {}
        self._by_hash: dict[bytes, tuple[bytes, int]] = {}  # request hash -> (trader, nonce) of _seen
        self._expiry: list[tuple[int, bytes, int]] = []  # min-heap of (timestamp, trader, nonce)
        self._verified: dict[bytes, SignedRequest] = {}  # entry bytes -> the request this node's admission verified

    # ------------------------------------------------------------ apply

    def apply(self, log_index: int, entry: bytes) -> AppliedEntry | None:
        """Apply one committed entry. Returns None for entries that are not requests (Raft no-ops, config)."""
        if log_index <= self.last_log_index:
            raise ProtocolError(f"entry {log_index} applied twice (last applied {self.last_log_index})")
        self.last_log_index = log_index
        if not entry or entry[0] not in (ENTRY_TRADER_REQUEST, ENTRY_OPERATOR_COMMAND):
            return None
        request_index = self.next_request_index
        self.next_request_index += 1
        if entry[0] == ENTRY_OPERATOR_COMMAND:
            try:
                updates = self.engine.execute_operator_command(entry[1:], request_index)
            except CommandRefused as exc:
                return AppliedEntry(request_index, log_index, entry, REFUSED, self.engine.epoch(), reason=exc.reason)
            return AppliedEntry(request_index, log_index, entry, SEQUENCED, self.engine.epoch(), updates=updates)
        return self._apply_trader_request(request_index, log_index, entry)

    def note_verified(self, entry: bytes, signed: SignedRequest) -> None:
        """This node's admission verified `signed` under this domain and `entry` is its encoding: applying these
        bytes need neither decode them nor recover the signer again (decoding and verification are pure functions
        of the bytes, so the outcome is the same on every node)."""
        if len(self._verified) >= MAX_PREVERIFIED:
            self._verified.clear()
        self._verified[entry] = signed

    def _apply_trader_request(self, request_index: int, log_index: int, entry: bytes) -> AppliedEntry:
        epoch = self.engine.epoch()
        try:
            signed = self._verified.pop(entry, None)
            if signed is None:
                request, signature = decode_entry(entry)
                signed = verify_request(request, signature, self.domain, agents=True)
            request = signed.request
        except RequestRejected as exc:
            return AppliedEntry(request_index, log_index, entry, REFUSED, epoch, reason=exc.reason)
        except ProtocolError:
            return AppliedEntry(request_index, log_index, entry, REFUSED, epoch, reason="malformed_entry")
        sender = signed.signer
        common = dict(request_hash=signed.request_hash, sender=sender, nonce=request.nonce)
        if sender != request.trader:
            problem = self.engine.agent_problem(request.trader, sender, request.strategy, request.timestamp)
            if problem is not None:
                return AppliedEntry(request_index, log_index, entry, REFUSED, epoch, reason=problem, **common)
        if request.timestamp + REPLAY_WINDOW_MS < self.high_water_ms:
            return AppliedEntry(request_index, log_index, entry, REFUSED, epoch, reason="expired", **common)
        if request.timestamp > self.high_water_ms:
            self.high_water_ms = request.timestamp
            self._forget_expired()
        seen = self._seen.get((sender, request.nonce))
        if seen is not None:
            return AppliedEntry(
                request_index, log_index, entry, DUPLICATE, seen.epoch, duplicate_of=seen.request_index, **common
            )
        self._remember(sender, request.nonce, SeenRequest(request.timestamp, request_index, signed.request_hash, epoch))
        updates = self.engine.execute_request(signed, request_index)
        return AppliedEntry(request_index, log_index, entry, SEQUENCED, epoch, updates=updates, **common)

    def _remember(self, trader: bytes, nonce: int, seen: SeenRequest) -> None:
        self._seen[(trader, nonce)] = seen
        self._by_hash[seen.request_hash] = (trader, nonce)
        heapq.heappush(self._expiry, (seen.timestamp, trader, nonce))

    def _forget_expired(self) -> None:
        horizon = self.high_water_ms - REPLAY_WINDOW_MS
        while self._expiry and self._expiry[0][0] < horizon:
            _, trader, nonce = heapq.heappop(self._expiry)
            seen = self._seen.pop((trader, nonce), None)
            if seen is not None:
                self._by_hash.pop(seen.request_hash, None)

    # ------------------------------------------------------------ queries

    def seen(self, trader: bytes, nonce: int) -> SeenRequest | None:
        """The sequenced request holding (trader, nonce) inside the replay window, if any."""
        return self._seen.get((trader, nonce))

    def seen_by_hash(self, request_hash: bytes) -> tuple[bytes, int, SeenRequest] | None:
        """(trader, nonce, SeenRequest) of the sequenced request with this hash inside the replay window."""
        key = self._by_hash.get(request_hash)
        if key is None:
            return None
        return key[0], key[1], self._seen[key]

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        return self.capture()()

    def capture(self) -> Callable[[], bytes]:
        """The state as of the last applied entry, taken now (the replay window copied, the engine's own capture);
        the returned function encodes it, on any thread: the Raft runtime encodes off the event loop."""
        cursors = (self.next_request_index, self.last_log_index, self.high_water_ms)
        seen = list(self._seen.items())  # SeenRequest values are immutable
        engine = self.engine.capture()

        def encode() -> bytes:
            window = [(t, n, s.timestamp, s.request_index, s.request_hash, s.epoch) for (t, n), s in sorted(seen)]
            return msgspec.msgpack.encode(_Snapshot(*cursors, window, engine()))

        return encode

    def restore(self, data: bytes) -> None:
        try:
            snap = msgspec.msgpack.decode(data, type=_Snapshot)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"corrupt state-machine snapshot: {exc}") from None
        self.engine.restore(snap.engine)
        self.next_request_index = snap.next_request_index
        self.last_log_index = snap.last_log_index
        self.high_water_ms = snap.high_water_ms
        self._seen = {}
        self._by_hash = {}
        self._expiry = []
        for trader, nonce, ts, request_index, request_hash, epoch in snap.seen:
            self._remember(trader, nonce, SeenRequest(ts, request_index, request_hash, epoch))

