"""Every Raft type that crosses a boundary: the wire (Message), the disk (Entry, HardState, Snapshot) and the
application (ConfChange, ReadState).

All types are msgspec Structs encoded as msgpack arrays (``array_like=True``): compact and fast, never pickle.
Compatibility rule: fields are only ever appended at the end with a default, never removed, renamed or reordered,
so an older decoder reading a newer frame fails loudly (too many fields) instead of misreading it, and a newer
decoder reads an older frame with the defaults.

Node ids are positive integers; ``NO_NODE`` (0) means "nobody" (no vote, no known leader).
"""

from __future__ import annotations

import enum

import msgspec

NO_NODE = 0


class MessageType(enum.IntEnum):
    # Local messages: produced and consumed inside one node, never sent on the wire.
    HUP = 0  # election timeout fired: start a (pre-)campaign
    BEAT = 1  # heartbeat timeout fired on the leader: broadcast heartbeats
    PROPOSE = 2  # client proposal (may be forwarded to the leader over the wire)
    CHECK_QUORUM = 3  # leader: step down if a quorum has not been heard from in an election timeout
    UNREACHABLE = 4  # transport reports a peer unreachable: leader drops it back to probing
    SNAP_STATUS = 5  # transport reports how sending a snapshot ended (reject=True means it failed)
    # Wire messages.
    APPEND = 6
    APPEND_RESP = 7
    VOTE = 8
    VOTE_RESP = 9
    PRE_VOTE = 10
    PRE_VOTE_RESP = 11
    SNAPSHOT = 12
    HEARTBEAT = 13
    HEARTBEAT_RESP = 14
    TRANSFER_LEADER = 15  # ask the leader to hand leadership to node ``index`` (``from_`` is the asker)
    TIMEOUT_NOW = 16  # leader tells the transferee to campaign at once, bypassing PreVote and leases
    READ_INDEX = 17
    READ_INDEX_RESP = 18


LOCAL_MESSAGE_TYPES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.CHECK_QUORUM,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
    }
)

RESPONSE_MESSAGE_TYPES = frozenset(
    {
        MessageType.APPEND_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.READ_INDEX_RESP,
    }
)


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1  # data is an encoded ConfChange (see encode_conf_change)


class Entry(msgspec.Struct, array_like=True, frozen=True):
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


class HardState(msgspec.Struct, array_like=True, frozen=True):
    """What must be on stable storage before any message that depends on it leaves the node."""

    term: int = 0
    vote: int = NO_NODE
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NO_NODE and self.commit == 0


EMPTY_HARD_STATE = HardState()


class StateRole(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class SoftState(msgspec.Struct, array_like=True, frozen=True):
    """Volatile state worth reporting (never persisted)."""

    leader: int = NO_NODE
    role: StateRole = StateRole.FOLLOWER


class ConfState(msgspec.Struct, array_like=True, frozen=True):
    """The membership in force: voters elect and commit, learners only receive the log."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0  # add a voter, or promote a learner to voter
    ADD_LEARNER = 1  # add a learner, or demote a voter to learner
    REMOVE_NODE = 2


class ConfChange(msgspec.Struct, array_like=True, frozen=True):
    type: ConfChangeType
    node_id: int
    context: bytes = b""  # opaque to Raft (e.g. the new node's address)


class SnapshotMetadata(msgspec.Struct, array_like=True, frozen=True):
    index: int = 0
    term: int = 0
    conf_state: ConfState = ConfState()


class Snapshot(msgspec.Struct, array_like=True, frozen=True):
    metadata: SnapshotMetadata = SnapshotMetadata()
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


class Message(msgspec.Struct, array_like=True, frozen=True):
    """One Raft message. Field use by type (etcd-io/raft conventions):

    - ``index``/``log_term``: APPEND: the entry preceding ``entries``; APPEND_RESP: the last index the follower
      matched (accept) or the rejected index (reject); VOTE/PRE_VOTE: the candidate's last index/term;
      READ_INDEX_RESP: the read index.
    - ``reject_hint``/``log_term`` on a rejected APPEND_RESP: the follower's best guess at where the logs may match
      (fast back-off): the largest index <= the probe whose term is <= the probed term, and that index's term.
    - ``from_`` is always the node that sent the message (the transport may check it against the authenticated
      peer); TRANSFER_LEADER names the transferee in ``index``.
    - ``context``: HEARTBEAT(_RESP) and READ_INDEX(_RESP) carry the read request context; VOTE carries
      CAMPAIGN_TRANSFER when the election comes from a leadership transfer (bypasses the leader lease).
    """

    type: MessageType
    to: int = NO_NODE
    from_: int = NO_NODE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


class ReadState(msgspec.Struct, array_like=True, frozen=True):
    """A linearizable read may be served once the local applied index reaches ``index``."""

    index: int
    request_ctx: bytes


CAMPAIGN_TRANSFER = b"CampaignTransfer"

_conf_change_encoder = msgspec.msgpack.Encoder()
_conf_change_decoder = msgspec.msgpack.Decoder(ConfChange)


def encode_conf_change(cc: ConfChange) -> bytes:
    return _conf_change_encoder.encode(cc)


def decode_conf_change(data: bytes) -> ConfChange:
    """Raises msgspec.DecodeError / msgspec.ValidationError on malformed data."""
    return _conf_change_decoder.decode(data)


def entry_size(entry: Entry) -> int:
    """Size accounted against the byte limits (max bytes per message, uncommitted tail): the payload size.

    Payload-only keeps the arithmetic cheap and deterministic; the fixed per-entry overhead is small and bounded.
    """
    return len(entry.data)
