"""The seam between the node and Raft: what the operator service needs from a sequencer.

`RaftSequencer` (node/raft_sequencer.py) implements it over the Raft runtime. Committed entries reach the node's
`OperatorService` in log order, on the event loop thread: as the Raft runtime's `raft.fsm.StateMachine` (its
`apply`), or through `apply_committed` (the `EntrySink` an in-memory sequencer drives).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..errors import DdxError


class SequencingError(DdxError):
    """The proposal's outcome is unknown (leadership lost, timeout): the client retries with the same nonce."""

    reason = "outcome_unknown"


class DefinitelyNotSequenced(SequencingError):
    """Raft refused or lost the proposal: it will never commit, so a retry cannot execute twice."""

    reason = "not_sequenced"


class NotLeaderError(SequencingError):
    """This node is not the leader; `leader_id` names the one it knows of (or None)."""

    reason = "not_leader"

    def __init__(self, leader_id: int | None) -> None:
        super().__init__("not the leader")
        self.leader_id = leader_id


class EntrySink(Protocol):
    def apply_committed(self, log_index: int, data: bytes) -> None: ...

    def snapshot(self) -> bytes: ...

    def capture(self) -> Callable[[], bytes]:
        """snapshot() in two steps: taken now, encoded when called (on the runtime's snapshot thread)."""
        ...

    def restore(self, data: bytes) -> None: ...


class Sequencer(Protocol):
    node_id: int

    async def propose(self, data: bytes) -> int:
        """Resolve with the entry's log index once it is committed on a quorum, fsync'd and applied by this node's
        sink; SequencingError else. Must resolve or fail within the sequencer's own proposal timeout: the service
        adds no timer of its own on this per-request path."""
        ...

    def is_leader(self) -> bool: ...

    def leader_id(self) -> int | None: ...

    def applied_index(self) -> int: ...

    def commit_index(self) -> int: ...

    def status(self) -> dict: ...
