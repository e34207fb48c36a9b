"""The application's side of Raft: the state machine interface, and client sessions for exactly-once apply.

Every NORMAL log entry written by the runtime carries an `Envelope`: who proposed it (node id and a node-local
proposal number, so the proposer can resolve its waiter) and the client session (client id, sequence number).
`SessionStateMachine` wraps the application's `StateMachine` and applies each (client id, sequence) at most once:
a client that retries a request after a timeout or a leader change — possibly through another node — gets the
first application's index and result back, and the application never sees the duplicate.

Sessions are part of the replicated state: they are in every snapshot, and evicting the least recently used one
when there are too many is a function of the log alone, so every node evicts the same sessions at the same index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from ..errors import DdxError

NO_CLIENT = b""  # a command without a session: applied every time it is committed
MAX_CLIENT_ID_BYTES = 64


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """The payload of a NORMAL entry written by the runtime."""

    origin: int  # node that proposed it
    proposal: int  # that node's proposal number (resolves the proposer's waiter)
    client_id: bytes
    sequence: int
    payload: bytes


class Command(msgspec.Struct, frozen=True):
    """One committed request as the application sees it."""

    index: int
    payload: bytes
    client_id: bytes = NO_CLIENT
    sequence: int = 0


class StateMachine(Protocol):
    """What the application implements. Calls are made from one task, in log order; each must be deterministic."""

    def apply(self, commands: Sequence[Command]) -> list[bytes | None]:
        """Apply committed commands in order; return one result per command (what the proposer receives)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state as of the last applied command."""
        ...

    # Optional: `capture() -> Callable[[], bytes]`, snapshot() in two steps (the state taken now, cheaply; encoded
    # when the result is called, on any thread). The runtime then encodes snapshots off the event loop; without it
    # snapshot() runs on the loop.

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...


class Applied(msgspec.Struct, frozen=True):
    """What a proposer gets back: the log index where the request took effect and the application's result.

    `duplicate` is True when this was a retry of a request already applied (index and result are the first
    application's)."""

    index: int
    result: bytes | None
    duplicate: bool = False


class _Session(msgspec.Struct, array_like=True):
    client_id: bytes
    sequence: int
    index: int
    result: bytes | None


class _SessionSnapshot(msgspec.Struct, array_like=True, frozen=True):
    sessions: list[_Session]
    application: bytes


_envelope_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(Envelope)
_snapshot_decoder = msgspec.msgpack.Decoder(_SessionSnapshot)


def encode_envelope(envelope: Envelope) -> bytes:
    return _envelope_encoder.encode(envelope)


def decode_envelope(data: bytes) -> Envelope:
    """Raises msgspec.DecodeError / ValidationError on data the runtime did not write."""
    return _envelope_decoder.decode(data)


class StaleRequestError(DdxError):
    """A request whose sequence number is older than the client's latest applied one: its result is gone."""


class SessionStateMachine:
    """Exactly-once wrapper around the application's state machine."""

    def __init__(self, application: StateMachine, max_sessions: int = 100_000) -> None:
        self.application = application
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()

    def apply(self, indexed: Sequence[tuple[int, Envelope]]) -> list[Applied | StaleRequestError]:
        """Apply a run of committed envelopes; duplicates are answered from the session table."""
        if all(envelope.client_id == NO_CLIENT for _, envelope in indexed):
            # No sessions involved (the common case for internal commands): no bookkeeping at all.
            commands = [Command(index, envelope.payload) for index, envelope in indexed]
            results = self.application.apply(commands)
            if len(results) != len(commands):
                raise RuntimeError(f"state machine returned {len(results)} results for {len(commands)} commands")
            return [Applied(index, result) for (index, _), result in zip(indexed, results)]
        outcomes: list[Applied | StaleRequestError | None] = [None] * len(indexed)
        fresh: list[Command] = []
        fresh_positions: list[int] = []
        # Within one run the same (client, sequence) may appear twice (a retry committed right after the
        # original): the first occurrence is "fresh", later ones must wait for its result.
        pending: dict[tuple[bytes, int], int] = {}
        repeats: list[tuple[int, int]] = []
        for position, (index, envelope) in enumerate(indexed):
            client = envelope.client_id
            if client == NO_CLIENT:
                fresh.append(Command(index, envelope.payload))
                fresh_positions.append(position)
                continue
            key = (client, envelope.sequence)
            if key in pending:
                repeats.append((position, pending[key]))
                continue
            session = self._sessions.get(client)
            if session is not None and envelope.sequence <= session.sequence:
                self._sessions.move_to_end(client)
                if envelope.sequence == session.sequence:
                    outcomes[position] = Applied(session.index, session.result, duplicate=True)
                else:
                    outcomes[position] = StaleRequestError(
                        f"client {client.hex()} sequence {envelope.sequence} is older than {session.sequence}"
                    )
                continue
            pending[key] = position
            fresh.append(Command(index, envelope.payload, client, envelope.sequence))
            fresh_positions.append(position)
        results = self.application.apply(fresh) if fresh else []
        if len(results) != len(fresh):
            raise RuntimeError(f"state machine returned {len(results)} results for {len(fresh)} commands")
        for command, position, result in zip(fresh, fresh_positions, results):
            outcomes[position] = Applied(command.index, result)
            if command.client_id != NO_CLIENT:
                self._remember(command, result)
        for position, first in repeats:
            original = outcomes[first]
            assert isinstance(original, Applied)
            outcomes[position] = Applied(original.index, original.result, duplicate=True)
        return outcomes  # type: ignore[return-value]

    def _remember(self, command: Command, result: bytes | None) -> None:
        session = self._sessions.get(command.client_id)
        if session is None:
            self._sessions[command.client_id] = _Session(command.client_id, command.sequence, command.index, result)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            session.sequence, session.index, session.result = command.sequence, command.index, result
            self._sessions.move_to_end(command.client_id)

    def snapshot(self) -> bytes:
        return self.capture()()

    def capture(self) -> Callable[[], bytes]:
        """The sessions copied now (they are updated in place) and the application's capture, if it has one."""
        sessions = [msgspec.structs.replace(session) for session in self._sessions.values()]
        capture = getattr(self.application, "capture", None)
        if capture is not None:
            application = capture()
        else:
            data = self.application.snapshot()
            application = lambda: data  # noqa: E731

        def encode() -> bytes:
            return _envelope_encoder.encode(_SessionSnapshot(sessions, application()))

        return encode

    def restore(self, data: bytes) -> None:
        image = _snapshot_decoder.decode(data)
        self._sessions = OrderedDict((session.client_id, session) for session in image.sessions)
        self.application.restore(image.application)

    def session_count(self) -> int:
        return len(self._sessions)
