"""Shape checks on a message from a peer, before it reaches the state machine.

The transport authenticates peers (mutual TLS) and bounds frame sizes; these checks make sure that even a
well-formed frame cannot carry a message whose fields contradict each other in a way the state machine trusts
(entry indexes that do not follow ``index``, entries from a future term, a SNAPSHOT without a snapshot).
"""

from __future__ import annotations

from ddx_offchain.raft.core.errors import StepError
from ddx_offchain.raft.messages import NO_NODE, Message, MessageType

MT = MessageType


def validate_peer_message(m: Message, self_id: int) -> None:
    """Raise StepError if ``m`` cannot be a message another node of this cluster sent to us."""
    if m.to != self_id:
        raise StepError(f"{m.type.name} addressed to {m.to}, this node is {self_id}")
    if m.from_ == NO_NODE or m.from_ < 0:
        raise StepError(f"{m.type.name} without a sender")
    if m.from_ == self_id:
        raise StepError(f"{m.type.name} claims to come from this node")
    if m.term < 0 or m.index < 0 or m.log_term < 0 or m.commit < 0 or m.reject_hint < 0:
        raise StepError(f"{m.type.name} with a negative field")
    if m.type == MT.SNAPSHOT:
        if m.snapshot is None or m.snapshot.is_empty():
            raise StepError("SNAPSHOT without a snapshot")
        if m.snapshot.metadata.term > m.term:
            raise StepError("SNAPSHOT from a future term")
    if m.type == MT.TRANSFER_LEADER and m.index == NO_NODE:
        raise StepError("TRANSFER_LEADER names no transferee")
    if m.type == MT.APPEND and m.log_term > m.term:
        raise StepError("APPEND whose previous entry is from a future term")
    if m.entries:
        if m.type not in (MT.APPEND, MT.PROPOSE):
            raise StepError(f"{m.type.name} cannot carry entries")
        if m.type == MT.APPEND:
            expected, last_term = m.index + 1, m.log_term
            for e in m.entries:
                if e.index != expected:
                    raise StepError(f"APPEND entries are not contiguous after {m.index} (found {e.index})")
                if e.term < last_term or e.term > m.term:
                    raise StepError(f"APPEND entry {e.index} has term {e.term} out of order")
                expected, last_term = expected + 1, e.term
