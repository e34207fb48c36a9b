"""Configuration of one Raft node (the knobs of etcd-io/raft's Config that this implementation supports)."""

from __future__ import annotations

from dataclasses import dataclass

from ddx_offchain.raft.messages import NO_NODE
from ddx_offchain.raft.storage import NO_LIMIT

from ...errors import DdxError


class ConfigError(DdxError, ValueError):
    """A configuration value is out of range; nothing was constructed."""


@dataclass(frozen=True, slots=True)
class Config:
    id: int
    # Ticks without hearing from a leader before a follower campaigns. The actual timeout is drawn uniformly from
    # [election_tick, 2 * election_tick) by the node's seeded PRNG, so dueling candidates separate.
    election_tick: int = 10
    # Ticks between the leader's heartbeats; must be smaller than election_tick.
    heartbeat_tick: int = 1
    # Last index applied to the state machine before this restart (only needed when restarting from a snapshot
    # or with applied state that outlives the process: committed entries below it are not handed out again).
    applied: int = 0
    # Byte budget of the entries in one APPEND (at least one entry is always sent).
    max_size_per_msg: int = 1 << 20
    # Byte budget of committed entries handed out in one Ready.
    max_committed_size_per_ready: int = NO_LIMIT
    # Leader refuses proposals once its uncommitted tail exceeds this many payload bytes (back-pressure).
    max_uncommitted_entries_size: int = NO_LIMIT
    # APPENDs in flight to one follower in replicate state before the leader pauses it.
    max_inflight_msgs: int = 256
    # Byte budget of the APPENDs in flight to one follower (0 = no byte limit).
    max_inflight_bytes: int = 0
    # Leader steps down when it has not heard from a quorum in an election timeout, and followers that heard
    # from a leader recently ignore votes (leader lease), so a partitioned node cannot disrupt the cluster.
    check_quorum: bool = True
    # Campaign in a pre-vote round first: a node that cannot win does not bump terms.
    pre_vote: bool = True
    # Followers drop proposals instead of forwarding them to the leader.
    disable_proposal_forwarding: bool = False
    # Seed of the PRNG that randomises election timeouts. The core reads no other randomness.
    seed: int = 0

    def validate(self) -> None:
        if self.id == NO_NODE or self.id < 0:
            raise ConfigError("id must be a positive integer")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat_tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max_inflight_msgs must be greater than 0")
        if self.max_size_per_msg <= 0 or self.max_committed_size_per_ready <= 0:
            raise ConfigError("byte limits must be greater than 0")
        if self.max_uncommitted_entries_size <= 0 or self.max_inflight_bytes < 0:
            raise ConfigError("byte limits must be positive")
        if self.applied < 0:
            raise ConfigError("applied must not be negative")
