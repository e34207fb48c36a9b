"""One log segment file: a magic header followed by checksummed frames, one frame per fsync'd batch.

Layout (all integers little-endian)::

    segment := MAGIC frame*
    frame   := payload_length:u32  payload_crc:u32  header_crc:u32  payload
    header_crc  = crc32c(payload_length ‖ payload_crc)
    payload_crc = crc32c(payload)

The writer appends exactly one frame per `write()` + `fdatasync()` and never writes the next frame before
that fsync returns. Recovery relies on it: damage can only be a *torn tail* (the last frame, never
acknowledged) if no complete frame follows it. Anything else is corruption of data that was acknowledged,
and the node refuses to start (`CorruptSegmentError` naming the file and offset).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from crc32c import crc32c

from .errors import CorruptSegmentError

MAGIC = b"DDXWAL\x00\x01"
FRAME_HEADER = struct.Struct("<III")
_LENGTH_AND_CRC = struct.Struct("<II")
# A frame is one batch of a Ready; the runtime bounds batches far below this. A larger declared length
# can only come from damage.
MAX_FRAME_PAYLOAD = 1 << 30
# Page size used to recognise a header torn across a page boundary (the unit the kernel writes back).
PAGE_SIZE = 4096


def encode_frame(payload: bytes) -> bytes:
    if not payload:
        raise ValueError("a frame payload is never empty")
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds {MAX_FRAME_PAYLOAD}")
    length_and_crc = _LENGTH_AND_CRC.pack(len(payload), crc32c(payload))
    return length_and_crc + crc32c(length_and_crc).to_bytes(4, "little") + payload


@dataclass(frozen=True, slots=True)
class ScannedSegment:
    """The frames of a segment in order, and where the valid prefix ends.

    `torn_at` is set when the last segment ends in a torn write: everything from that offset on is discarded.
    """

    path: Path
    payloads: list[memoryview]
    offsets: list[int]  # where each payload's frame starts in the file
    valid_end: int
    torn_at: int | None


def scan_segment(path: Path, data: bytes, *, is_last: bool) -> ScannedSegment:
    """Split `data` (the whole file) into frame payloads, checking every checksum.

    Only the last segment may end in a torn write; a sealed segment must be intact to its end.
    """
    size = len(data)
    if size < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if is_last and _never_written(data[: len(MAGIC)]):
            return ScannedSegment(path, [], [], 0, 0)
        raise CorruptSegmentError(path, 0, "bad segment magic")
    return scan_frames(path, data, len(MAGIC), is_last=is_last)


def scan_frames(path: Path, data: bytes, offset: int, *, is_last: bool) -> ScannedSegment:
    """Split data[offset:] into frame payloads; see `scan_segment` for the torn-tail rule."""
    view = memoryview(data)
    size = len(data)
    payloads: list[memoryview] = []
    offsets: list[int] = []
    while offset < size:
        damage = _frame_damage(data, offset, size)
        if damage is None:
            length = FRAME_HEADER.unpack_from(data, offset)[0]
            start = offset + FRAME_HEADER.size
            payloads.append(view[start : start + length])
            offsets.append(offset)
            offset = start + length
            continue
        reason, frame_end = damage
        if is_last and _is_torn_tail(data, offset, size, frame_end):
            return ScannedSegment(path, payloads, offsets, offset, offset)
        raise CorruptSegmentError(path, offset, reason)
    return ScannedSegment(path, payloads, offsets, offset, None)


def _frame_damage(data: bytes, offset: int, size: int) -> tuple[str, int | None] | None:
    """None if a complete valid frame starts at `offset`, else (reason, end of the frame if known)."""
    if size - offset < FRAME_HEADER.size:
        return "truncated frame header", None
    length, payload_crc, header_crc = FRAME_HEADER.unpack_from(data, offset)
    if crc32c(data[offset : offset + 8]) != header_crc or not 0 < length <= MAX_FRAME_PAYLOAD:
        return "frame header checksum mismatch", None
    start = offset + FRAME_HEADER.size
    end = start + length
    if end > size:
        return "frame runs past the end of the file", end
    if crc32c(data[start:end]) != payload_crc:
        return "frame payload checksum mismatch", end
    return None


def _is_torn_tail(data: bytes, offset: int, size: int, frame_end: int | None) -> bool:
    """Could the damage at `offset` be the unacknowledged last write, cut short by a crash?

    A torn write leaves the file shorter than written, or leaves pages of it zero-filled. It cannot be
    followed by a complete frame, because the next frame is only written after this one's fsync.
    """
    if size - offset < FRAME_HEADER.size:
        return True
    header = data[offset : offset + FRAME_HEADER.size]
    if frame_end is None:
        # The header itself is bad: torn only if it was never written (zeros) or straddles a page
        # boundary whose second half did not reach the disk.
        straddles_page = offset // PAGE_SIZE != (offset + FRAME_HEADER.size - 1) // PAGE_SIZE
        return _never_written(header) or straddles_page
    # The header is sound, so we know where the frame ends: torn only if nothing was written after it.
    return frame_end >= size


def _never_written(chunk: bytes) -> bool:
    return not any(chunk)


class SegmentWriter:
    """Appends frames to one open segment file and fsyncs them."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self.size = size

    @classmethod
    def create(cls, path: Path) -> SegmentWriter:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        writer = cls(path, fd, 0)
        writer._write_all(MAGIC)
        return writer

    @classmethod
    def reopen(cls, path: Path, valid_end: int) -> SegmentWriter:
        """Open an existing segment for appending, cutting off a torn tail at `valid_end` first."""
        fd = os.open(path, os.O_WRONLY)
        current = os.fstat(fd).st_size
        writer = cls(path, fd, valid_end)
        if current != valid_end:
            os.ftruncate(fd, valid_end)
            os.fsync(fd)
        if valid_end == 0:
            writer._write_all(MAGIC)
        os.lseek(fd, writer.size, os.SEEK_SET)
        return writer

    def append(self, frame: bytes) -> None:
        self._write_all(frame)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write_all(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(chunk)
