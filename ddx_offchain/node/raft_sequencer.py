"""The Sequencer over the Raft runtime (ddx_offchain/raft/runtime.py).

The runtime resolves a proposal once its entry is committed on a quorum, fsync'd, and applied on this node, or fails
it after its proposal timeout; a follower's proposal is forwarded to the leader by Raft itself. Trader-level
exactly-once comes from the state machine's (trader, nonce) rule, so proposals carry no Raft client session.

A forwarded proposal dies with the leader it was forwarded to if that leader had not replicated it. Rather than wait
out the proposal timeout (then answer "outcome unknown"), a follower forwards the same entry again as soon as it
sees a new leader: every entry the node proposes is idempotent (a trader request by (trader, nonce), an operator
command by its request id), so if both copies commit the second applies as a duplicate of the first, and the
proposal resolves with whichever copy this node applies first. No receipt for a request that did not execute, no
second execution.
"""

from __future__ import annotations

import asyncio

from ..raft import runtime as rt
from ..raft.messages import NO_NODE
from .sequencer import DefinitelyNotSequenced, NotLeaderError, SequencingError

MAX_REFORWARDS = 5  # leader changes one proposal follows before it gives up (each copy keeps its own timeout)


class RaftSequencer:
    def __init__(self, raft: rt.RaftNode) -> None:
        self.raft = raft
        self.node_id = raft.config.node_id
        self.reforwarded = 0  # proposals forwarded again after a leader change

    async def propose(self, data: bytes) -> int:
        try:
            # submit() hands back the runtime's future (no coroutine frame); the runtime enforces its proposal
            # timeout on it, which is the bound Sequencer.propose promises.
            future = self.raft.submit(data)
            if self.raft.is_leader():
                applied = await future
            else:
                applied = await self._forwarded(data, future)
        except rt.NotLeaderError as exc:
            raise NotLeaderError(exc.leader or None) from None
        except (rt.ProposalDroppedByRaftError, rt.ProposalLostError) as exc:
            raise DefinitelyNotSequenced(str(exc)) from None
        except (rt.ProposalTimeoutError, rt.NodeStoppedError, rt.RaftError) as exc:
            raise SequencingError(str(exc)) from None
        return applied.index

    async def _forwarded(self, data: bytes, first: asyncio.Future):
        """Wait for a forwarded proposal; on each leader change, forward the same entry to the new leader too.
        Resolves with the first copy applied here; raises the last error once every copy failed."""
        copies = [first]
        change = self.raft.leader_change()  # shared with every other waiter: never cancelled here
        forwards = 0
        try:
            while True:
                done, _ = await asyncio.wait({*copies, change}, return_when=asyncio.FIRST_COMPLETED)
                for copy in [c for c in copies if c in done]:
                    if copy.exception() is None:
                        return copy.result()
                    copies.remove(copy)
                    if not copies:
                        raise copy.exception()
                if change in done:
                    leader = change.result()
                    change = self.raft.leader_change()
                    if leader != NO_NODE and forwards < MAX_REFORWARDS:
                        copies.append(self.raft.submit(data))
                        forwards += 1
                        self.reforwarded += 1
        finally:
            for copy in copies:  # the loser's eventual outcome is of no interest (and must not be "never retrieved")
                copy.add_done_callback(_consume)

    def _status(self) -> rt.NodeStatus | None:
        try:
            return self.raft.status()
        except rt.NodeNotStartedError:
            return None

    def is_leader(self) -> bool:
        status = self._status()
        return status is not None and status.role == "LEADER"

    def leader_id(self) -> int | None:
        status = self._status()
        return None if status is None or status.leader == NO_NODE else status.leader

    def applied_index(self) -> int:
        status = self._status()
        return 0 if status is None else status.applied_index

    def commit_index(self) -> int:
        status = self._status()
        return 0 if status is None else status.commit_index

    def status(self) -> dict:
        s = self._status()
        if s is None:
            return {"role": "starting"}
        return {
            "id": s.id,
            "role": s.role.lower(),
            "term": s.term,
            "lastIndex": s.last_log_index,
            "firstIndex": s.first_log_index,
            "snapshotIndex": s.snapshot_index,
            "voters": list(s.voters),
            "learners": list(s.learners),
            "connectedPeers": list(s.connected_peers),
            "followers": {
                str(peer): {"match": f.match, "next": f.next, "state": f.state.lower(), "recentActive": f.recent_active}
                for peer, f in s.followers.items()
            },
            "fsyncs": self.raft.counters.fsyncs,
            "entriesPersisted": self.raft.counters.entries_persisted,
            "fsyncSecondsTotal": getattr(self.raft.counters, "fsync_seconds", None),
        }


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
