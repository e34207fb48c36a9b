"""Client sessions: a retried request is applied exactly once, deterministically, across snapshots."""

from __future__ import annotations

from ddx_offchain.raft.fsm import Applied, Command, Envelope, SessionStateMachine, StaleRequestError


class Recorder:
    def __init__(self) -> None:
        self.applied: list[bytes] = []

    def apply(self, commands: list[Command]) -> list[bytes | None]:
        self.applied.extend(c.payload for c in commands)
        return [b"r" + c.payload for c in commands]

    def snapshot(self) -> bytes:
        return b"|".join(self.applied)

    def restore(self, data: bytes) -> None:
        self.applied = data.split(b"|") if data else []


def env(payload: bytes, client: bytes = b"", sequence: int = 0) -> Envelope:
    return Envelope(origin=1, proposal=0, client_id=client, sequence=sequence, payload=payload)


def test_duplicate_is_answered_from_the_session() -> None:
    machine = SessionStateMachine(Recorder())
    first = machine.apply([(1, env(b"a", b"c1", 1))])
    retry = machine.apply([(5, env(b"a", b"c1", 1))])
    assert first == [Applied(1, b"ra")]
    assert retry == [Applied(1, b"ra", duplicate=True)]
    assert machine.application.applied == [b"a"]


def test_duplicate_within_one_run_and_commands_without_session() -> None:
    machine = SessionStateMachine(Recorder())
    out = machine.apply([(1, env(b"a", b"c1", 1)), (2, env(b"n")), (3, env(b"a", b"c1", 1)), (4, env(b"n"))])
    assert out == [Applied(1, b"ra"), Applied(2, b"rn"), Applied(1, b"ra", duplicate=True), Applied(4, b"rn")]
    assert machine.application.applied == [b"a", b"n", b"n"], "session-less commands apply every time"


def test_older_sequence_is_stale() -> None:
    machine = SessionStateMachine(Recorder())
    machine.apply([(1, env(b"a", b"c1", 1)), (2, env(b"b", b"c1", 2))])
    (outcome,) = machine.apply([(3, env(b"a", b"c1", 1))])
    assert isinstance(outcome, StaleRequestError)
    assert machine.application.applied == [b"a", b"b"]


def test_sessions_survive_snapshot_and_restore() -> None:
    machine = SessionStateMachine(Recorder())
    machine.apply([(1, env(b"a", b"c1", 1))])
    restored = SessionStateMachine(Recorder())
    restored.restore(machine.snapshot())
    assert restored.apply([(9, env(b"a", b"c1", 1))]) == [Applied(1, b"ra", duplicate=True)]
    assert restored.application.applied == [b"a"]


def test_eviction_is_least_recently_used_and_deterministic() -> None:
    machines = [SessionStateMachine(Recorder(), max_sessions=2) for _ in range(2)]
    for machine in machines:
        machine.apply([(1, env(b"a", b"c1", 1)), (2, env(b"b", b"c2", 1))])
        machine.apply([(3, env(b"a", b"c1", 1))])  # touches c1: c2 is now the least recent
        machine.apply([(4, env(b"c", b"c3", 1))])
        assert machine.session_count() == 2
    assert machines[0].snapshot() == machines[1].snapshot()
    # c2 was evicted: its retry is applied again (the documented cost of a bounded table); c1 is remembered.
    assert machines[0].apply([(5, env(b"b", b"c2", 1)), (6, env(b"a", b"c1", 1))]) == [
        Applied(5, b"rb"),
        Applied(1, b"ra", duplicate=True),
    ]
