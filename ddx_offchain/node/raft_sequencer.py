"""The Sequencer over the Raft runtime (ddx_offchain/raft/runtime.py).

The runtime resolves a proposal once its entry is committed on a quorum, fsync'd, and applied on this node, or fails
it after its proposal timeout; a follower's proposal is forwarded to the leader by Raft itself. Trader-level
exactly-once comes from the state machine's (trader, nonce) rule, so proposals carry no Raft client session.
"""

from __future__ import annotations

from ..raft import runtime as rt
from ..raft.messages import NO_NODE
from .sequencer import DefinitelyNotSequenced, NotLeaderError, SequencingError


class RaftSequencer:
    def __init__(self, raft: rt.RaftNode) -> None:
        self.raft = raft
        self.node_id = raft.config.node_id

    async def propose(self, data: bytes) -> int:
        try:
            # submit() hands back the runtime's future (no coroutine frame); the runtime enforces its proposal
            # timeout on it, which is the bound Sequencer.propose promises.
            applied = await self.raft.submit(data)
        except rt.NotLeaderError as exc:
            raise NotLeaderError(exc.leader or None) from None
        except (rt.ProposalDroppedByRaftError, rt.ProposalLostError) as exc:
            raise DefinitelyNotSequenced(str(exc)) from None
        except (rt.ProposalTimeoutError, rt.NodeStoppedError, rt.RaftError) as exc:
            raise SequencingError(str(exc)) from None
        return applied.index

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
