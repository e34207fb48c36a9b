"""The simulator's state machine: an ordered list of client commands with per-client sessions.

A client sends (client id, sequence number) and retries with the same number until it gets an answer, so the
same command may be committed more than once; the session table makes the second application a no-op. That is
what makes "every acknowledged proposal applied exactly once" hold (part B's FSM does the same for real).
"""

from __future__ import annotations

import msgspec

from ddx_offchain.raft.messages import ConfState


class SimulationFailure(AssertionError):
    """An invariant broke. The message names it; the simulator adds the command that replays the seed."""


def encode_command(client: int, seq: int) -> bytes:
    return b"%d:%d" % (client, seq)


def decode_command(data: bytes) -> tuple[int, int]:
    client, seq = data.split(b":")
    return int(client), int(seq)


class _SnapshotData(msgspec.Struct, array_like=True):
    commands: list[tuple[int, int]]
    sessions: dict[int, int]
    applied_index: int


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_SnapshotData)


class SessionFSM:
    def __init__(self, conf_state: ConfState) -> None:
        self.commands: list[tuple[int, int]] = []
        self.sessions: dict[int, int] = {}  # client -> last applied sequence number
        self.applied_index = 0
        self.conf_state = conf_state

    def apply(self, index: int, data: bytes) -> tuple[int, int] | None:
        """Apply a normal entry; returns the (client, seq) it answers, or None for the leader's empty entry."""
        if index != self.applied_index + 1:
            raise SimulationFailure(f"applied index {index} after {self.applied_index}: gap or repeat")
        self.applied_index = index
        if not data:
            return None
        client, seq = decode_command(data)
        last = self.sessions.get(client, 0)
        if seq == last + 1:
            self.sessions[client] = seq
            self.commands.append((client, seq))
        elif seq > last + 1:
            raise SimulationFailure(f"client {client} seq {seq} applied after {last}: a proposal was skipped")
        return client, seq  # seq <= last: a retry, answered from the session table

    def skip(self, index: int) -> None:
        """A conf-change entry: it advances the applied index but carries no command."""
        if index != self.applied_index + 1:
            raise SimulationFailure(f"applied index {index} after {self.applied_index}: gap or repeat")
        self.applied_index = index

    def snapshot_data(self) -> bytes:
        return _encoder.encode(_SnapshotData(self.commands, self.sessions, self.applied_index))

    def restore(self, data: bytes, conf_state: ConfState) -> None:
        if not data:
            self.commands, self.sessions, self.applied_index = [], {}, 0
        else:
            snap = _decoder.decode(data)
            self.commands = [tuple(c) for c in snap.commands]
            self.sessions = dict(snap.sessions)
            self.applied_index = snap.applied_index
        self.conf_state = conf_state
