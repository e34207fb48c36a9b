"""Bytes on the peer wire: msgspec msgpack frames, bounded and validated at the boundary (never pickle).

A frame payload is one of (a tagged msgpack array):

- `MessageBatch`: Raft messages from one peer to another, in order.
- `SnapshotChunk`: one piece of an APPEND-of-snapshot message too big for a single frame. The chunks of one
  transfer arrive in order on one connection; the receiver reassembles them (bounded by `max_snapshot_bytes`)
  and decodes the message once the last chunk is in.

Every decoded message is checked against the authenticated sender: a peer can only speak for itself, only to
us, only with wire message types and non-negative counters. Anything else is a `CodecError`.
"""

from __future__ import annotations

import msgspec

from ddx_offchain.raft.messages import LOCAL_MESSAGE_TYPES, Message, MessageType

from ..errors import DdxError

# 4-byte big-endian length prefix in front of every frame payload.
LENGTH_PREFIX_BYTES = 4
DEFAULT_MAX_FRAME_BYTES = 16 << 20
DEFAULT_MAX_SNAPSHOT_BYTES = 4 << 30
_MAX_COUNTER = (1 << 63) - 1


class CodecError(DdxError, ValueError):
    """A frame or message that must be dropped: malformed, oversized, or not from whom it claims."""


class MessageBatch(msgspec.Struct, array_like=True, frozen=True, tag=1):
    messages: tuple[Message, ...]


class SnapshotChunk(msgspec.Struct, array_like=True, frozen=True, tag=2):
    transfer_id: int
    sequence: int  # 0, 1, 2, ... within the transfer
    total_bytes: int  # size of the whole encoded message
    last: bool
    data: bytes


Frame = MessageBatch | SnapshotChunk

_encoder = msgspec.msgpack.Encoder()
_frame_decoder = msgspec.msgpack.Decoder(Frame)
_message_decoder = msgspec.msgpack.Decoder(Message)


def encode_frame_payload(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def frame_bytes(payload: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Length-prefix a payload; refuses (CodecError) to build a frame the peer would drop."""
    if len(payload) > max_frame_bytes:
        raise CodecError(f"frame of {len(payload)} bytes exceeds the maximum of {max_frame_bytes}")
    return len(payload).to_bytes(LENGTH_PREFIX_BYTES, "big") + payload


def encode_message(message: Message) -> bytes:
    return _encoder.encode(message)


def decode_frame_payload(payload: bytes | memoryview) -> Frame:
    try:
        return _frame_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CodecError(f"malformed frame: {exc}") from None


def decode_message(data: bytes | memoryview) -> Message:
    try:
        return _message_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CodecError(f"malformed message: {exc}") from None


def check_message(message: Message, *, sender: int, receiver: int) -> None:
    """Raise CodecError unless `message` is a plausible wire message from `sender` to `receiver`."""
    if message.type in LOCAL_MESSAGE_TYPES:
        raise CodecError(f"local message type {message.type.name} received from node {sender}")
    if message.from_ != sender:
        raise CodecError(f"message claims to be from node {message.from_} on node {sender}'s connection")
    if message.to != receiver:
        raise CodecError(f"message for node {message.to} delivered to node {receiver}")
    for counter in (message.term, message.log_term, message.index, message.commit, message.reject_hint):
        if not 0 <= counter <= _MAX_COUNTER:
            raise CodecError(f"counter {counter} out of range")
    previous = message.index
    contiguous = message.type == MessageType.APPEND  # forwarded proposals carry entries without an index yet
    for entry in message.entries:
        if not 0 <= entry.term <= _MAX_COUNTER or not 0 <= entry.index <= _MAX_COUNTER:
            raise CodecError(f"entry ({entry.term}, {entry.index}) out of range")
        if contiguous and entry.index != previous + 1:
            raise CodecError(f"APPEND entries not contiguous at index {entry.index}")
        previous = entry.index
    if message.snapshot is not None:
        metadata = message.snapshot.metadata
        if not (0 <= metadata.index <= _MAX_COUNTER and 0 <= metadata.term <= _MAX_COUNTER):
            raise CodecError("snapshot metadata out of range")


class SnapshotAssembler:
    """Reassembles the chunks of one snapshot transfer on one connection."""

    def __init__(self, max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES) -> None:
        self._max = max_snapshot_bytes
        self._transfer_id: int | None = None
        self._next_sequence = 0
        self._total = 0
        self._parts: list[bytes] = []
        self._received = 0

    def add(self, chunk: SnapshotChunk) -> Message | None:
        """Feed one chunk; returns the message when the transfer is complete. CodecError resets the transfer."""
        if chunk.sequence == 0:
            if not 0 < chunk.total_bytes <= self._max:
                self._reset()
                raise CodecError(f"snapshot transfer of {chunk.total_bytes} bytes exceeds {self._max}")
            self._reset()
            self._transfer_id = chunk.transfer_id
            self._total = chunk.total_bytes
        elif chunk.transfer_id != self._transfer_id or chunk.sequence != self._next_sequence:
            self._reset()
            raise CodecError(f"snapshot chunk {chunk.sequence} of transfer {chunk.transfer_id} out of order")
        self._received += len(chunk.data)
        if self._received > self._total:
            self._reset()
            raise CodecError("snapshot transfer longer than announced")
        self._parts.append(chunk.data)
        self._next_sequence = chunk.sequence + 1
        if not chunk.last:
            return None
        complete = self._received == self._total
        data = b"".join(self._parts)
        self._reset()
        if not complete:
            raise CodecError("snapshot transfer shorter than announced")
        return decode_message(data)

    def _reset(self) -> None:
        self._transfer_id = None
        self._next_sequence = 0
        self._total = 0
        self._parts = []
        self._received = 0


def split_into_chunks(transfer_id: int, encoded_message: bytes, chunk_bytes: int) -> list[SnapshotChunk]:
    total = len(encoded_message)
    pieces = [encoded_message[start : start + chunk_bytes] for start in range(0, total, chunk_bytes)]
    return [
        SnapshotChunk(transfer_id, sequence, total, sequence == len(pieces) - 1, piece)
        for sequence, piece in enumerate(pieces)
    ]
