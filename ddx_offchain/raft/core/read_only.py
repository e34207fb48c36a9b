"""ReadIndex bookkeeping on the leader (etcd-io/raft read_only.go, safe mode only).

A read request records the commit index at arrival, then rides on a heartbeat round carrying its context. Once a
quorum answers that round, no newer leader can exist that committed more, so the read is linearizable at that
index. Requests are confirmed in arrival order: a quorum for a later context confirms every earlier one too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ddx_offchain.raft.messages import Message


@dataclass(slots=True)
class ReadIndexStatus:
    request: Message
    index: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("pending", "queue")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, request: Message) -> None:
        ctx = request.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(request=request, index=index)
        self.queue.append(ctx)

    def recv_ack(self, node_id: int, ctx: bytes) -> set[int] | None:
        status = self.pending.get(ctx)
        if status is None:
            return None
        status.acks.add(node_id)
        return status.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Pop every request up to and including ``ctx``."""
        if ctx not in self.pending:
            return []
        k = self.queue.index(ctx)
        done_ctxs = self.queue[: k + 1]
        del self.queue[: k + 1]
        return [self.pending.pop(c) for c in done_ctxs]

    def last_pending_request_ctx(self) -> bytes | None:
        return self.queue[-1] if self.queue else None
