"""Peer wire codec: bounds and validation at the boundary."""

from __future__ import annotations

import msgspec
import pytest

from ddx_offchain.raft.codec import (
    CodecError,
    MessageBatch,
    SnapshotAssembler,
    SnapshotChunk,
    check_message,
    decode_frame_payload,
    encode_frame_payload,
    encode_message,
    frame_bytes,
    split_into_chunks,
)
from ddx_offchain.raft.messages import Entry, Message, MessageType, Snapshot, SnapshotMetadata


def append(**fields) -> Message:
    defaults = dict(type=MessageType.APPEND, to=2, from_=1, term=3, index=4, log_term=3,
                    entries=(Entry(3, 5, data=b"a"), Entry(3, 6, data=b"b")), commit=4)
    defaults.update(fields)
    return Message(**defaults)


def test_roundtrip() -> None:
    batch = MessageBatch((append(), Message(MessageType.HEARTBEAT, to=2, from_=1, term=3)))
    assert decode_frame_payload(encode_frame_payload(batch)) == batch


def test_frame_size_is_bounded() -> None:
    assert frame_bytes(b"x" * 10, 10)[:4] == (10).to_bytes(4, "big")
    with pytest.raises(CodecError):
        frame_bytes(b"x" * 11, 10)


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"\x92\x01", msgspec.msgpack.encode([9, []]), b"\x92\x01\x91\x01"])
def test_malformed_payload_is_a_codec_error(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode_frame_payload(garbage)


def test_valid_message_passes() -> None:
    check_message(append(), sender=1, receiver=2)


@pytest.mark.parametrize(
    "message, reason",
    [
        (append(from_=3), "claims"),
        (append(to=3), "delivered"),
        (Message(MessageType.HUP, to=2, from_=1), "local"),
        (Message(MessageType.SNAP_STATUS, to=2, from_=1), "local"),
        (append(term=-1), "out of range"),
        (append(commit=1 << 64), "out of range"),
        (append(entries=(Entry(3, 5), Entry(3, 7))), "contiguous"),
        (append(entries=(Entry(-3, 5),)), "out of range"),
    ],
)
def test_invalid_messages_are_rejected(message: Message, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        check_message(message, sender=1, receiver=2)


def test_forwarded_proposals_carry_unindexed_entries() -> None:
    proposal = Message(MessageType.PROPOSE, to=2, from_=1, entries=(Entry(0, 0, data=b"x"), Entry(0, 0, data=b"y")))
    check_message(proposal, sender=1, receiver=2)


def snapshot_message(size: int) -> Message:
    return Message(MessageType.SNAPSHOT, to=2, from_=1, term=2,
                   snapshot=Snapshot(SnapshotMetadata(index=50, term=2), bytes(range(256)) * (size // 256)))


def test_snapshot_chunks_reassemble() -> None:
    message = snapshot_message(100_000)
    assembler = SnapshotAssembler()
    chunks = split_into_chunks(7, encode_message(message), 4096)
    assert len(chunks) > 20
    results = [assembler.add(chunk) for chunk in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1) and results[-1] == message


def test_snapshot_chunks_out_of_order_or_oversized_are_refused() -> None:
    chunks = split_into_chunks(7, encode_message(snapshot_message(10_000)), 1000)
    assembler = SnapshotAssembler()
    assembler.add(chunks[0])
    with pytest.raises(CodecError, match="out of order"):
        assembler.add(chunks[2])
    with pytest.raises(CodecError, match="out of order"):
        assembler.add(chunks[1])  # the transfer was reset: it has to start again from chunk 0
    assert [assembler.add(c) for c in chunks][-1] is not None
    small = SnapshotAssembler(max_snapshot_bytes=5000)
    with pytest.raises(CodecError, match="exceeds"):
        small.add(chunks[0])
    lying = SnapshotAssembler()
    lying.add(SnapshotChunk(1, 0, 10, False, b"12345"))
    with pytest.raises(CodecError, match="longer"):
        lying.add(SnapshotChunk(1, 1, 10, True, b"1234567"))
