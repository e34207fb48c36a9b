"""The write-ahead log: a directory of append-only segments holding everything a Ready asks to persist.

Each `write()` is one frame (entries + hard state + an installed-snapshot mark) and one fdatasync, so a Ready
costs exactly one fsync however many entries it carries. Keeping the hard state in the same frame as the entries
(etcd's layout) is what makes "term and vote are durable before any message that depends on them leaves" free:
there is no second file to sync.

Records are only ever appended. A conflicting suffix is truncated *logically*: a later frame carrying index i
replaces every entry >= i on replay. An installed snapshot voids every entry written before it.

Segments are named ``{seq:016x}-{first_index:016x}.wal``; a new one starts when the active one passes
`segment_bytes`, and it begins with a frame carrying the current hard state so older segments can be deleted
once a snapshot covers every index they hold (`release_through`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from ddx_offchain.raft.messages import Entry, HardState, SnapshotMetadata

from .errors import CorruptSegmentError
from .fileio import fsync_directory
from .segment import SegmentWriter, encode_frame, scan_segment

SEGMENT_SUFFIX = ".wal"
DEFAULT_SEGMENT_BYTES = 64 << 20


class WalBatch(msgspec.Struct, array_like=True, frozen=True):
    """One frame of the log: what one Ready persisted."""

    entries: tuple[Entry, ...] = ()
    hard_state: HardState | None = None
    # The log was replaced by this snapshot (received from the leader): every entry written before is void.
    installed_snapshot: SnapshotMetadata | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WalBatch)


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    stem, dot, suffix = name.partition(".")
    if "." + suffix != SEGMENT_SUFFIX or not dot:
        return None
    seq, dash, first = stem.partition("-")
    if not dash or len(seq) != 16 or len(first) != 16:
        return None
    try:
        return int(seq, 16), int(first, 16)
    except ValueError:
        return None


@dataclass(slots=True)
class _Segment:
    path: Path
    seq: int
    # Highest log index any frame of this segment mentions (entries or snapshot mark); 0 if none.
    max_index: int = 0


class WriteAheadLog:
    def __init__(self, directory: Path, segments: list[_Segment], writer: SegmentWriter, segment_bytes: int) -> None:
        self.directory = directory
        self._segments = segments
        self._writer = writer
        self._segment_bytes = segment_bytes
        self._last_hard_state: HardState | None = None
        self._next_index_hint = 1

    # --- opening and recovery ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> tuple[WriteAheadLog, list[WalBatch]]:
        """Open (or create) the log and return every batch in it, in write order.

        A torn tail of the last segment is cut off (the file is truncated to its last valid frame); damage
        anywhere else raises `CorruptSegmentError` before any byte is changed.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        named: list[tuple[int, int, Path]] = []
        for path in directory.iterdir():
            parsed = parse_segment_name(path.name)
            if parsed is not None:
                named.append((parsed[0], parsed[1], path))
        named.sort()
        for (seq_a, _, path_a), (seq_b, _, _) in zip(named, named[1:]):
            if seq_b != seq_a + 1:
                raise CorruptSegmentError(path_a, 0, f"segment sequence jumps from {seq_a} to {seq_b}")

        segments: list[_Segment] = []
        batches: list[WalBatch] = []
        torn_end: int | None = None
        for position, (seq, _, path) in enumerate(named):
            is_last = position == len(named) - 1
            scanned = scan_segment(path, path.read_bytes(), is_last=is_last)
            segment = _Segment(path, seq)
            for payload, offset in zip(scanned.payloads, scanned.offsets):
                try:
                    batch = _decoder.decode(payload)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    # The checksum matched, so these bytes are what was written: not a torn write.
                    raise CorruptSegmentError(path, offset, f"undecodable batch: {exc}") from None
                batches.append(batch)
                segment.max_index = max(segment.max_index, _max_index(batch))
            segments.append(segment)
            if is_last:
                torn_end = scanned.valid_end

        if segments:
            writer = SegmentWriter.reopen(segments[-1].path, torn_end or 0)
        else:
            path = directory / segment_name(0, 1)
            writer = SegmentWriter.create(path)
            writer.sync()
            fsync_directory(directory)
            segments.append(_Segment(path, 0))
        wal = cls(directory, segments, writer, segment_bytes)
        for batch in batches:
            if batch.hard_state is not None:
                wal._last_hard_state = batch.hard_state
            if batch.entries:
                wal._next_index_hint = batch.entries[-1].index + 1
            if batch.installed_snapshot is not None and not batch.entries:
                wal._next_index_hint = batch.installed_snapshot.index + 1
        return wal, batches

    # --- writing -------------------------------------------------------------------------------------------
    def write(self, batch: WalBatch) -> None:
        """Append one batch as one frame and fdatasync it. Returns only once the batch is durable."""
        self._writer.append(encode_frame(_encoder.encode(batch)))
        self._writer.sync()
        self._segments[-1].max_index = max(self._segments[-1].max_index, _max_index(batch))
        if batch.hard_state is not None:
            self._last_hard_state = batch.hard_state
        if batch.entries:
            self._next_index_hint = batch.entries[-1].index + 1
        elif batch.installed_snapshot is not None:
            self._next_index_hint = batch.installed_snapshot.index + 1
        if self._writer.size >= self._segment_bytes:
            self._roll()

    def _roll(self) -> None:
        """Seal the active segment and start the next one, carrying the hard state forward."""
        seq = self._segments[-1].seq + 1
        path = self.directory / segment_name(seq, self._next_index_hint)
        writer = SegmentWriter.create(path)
        if self._last_hard_state is not None:
            writer.append(encode_frame(_encoder.encode(WalBatch(hard_state=self._last_hard_state))))
        writer.sync()
        fsync_directory(self.directory)
        self._writer.close()
        self._writer = writer
        self._segments.append(_Segment(path, seq))

    # --- compaction ----------------------------------------------------------------------------------------
    def release_through(self, snapshot_index: int) -> list[Path]:
        """Delete the oldest segments whose every index is covered by a durable snapshot at `snapshot_index`.

        Only a prefix is deleted (an older segment may hold entries a newer one's snapshot mark voids), and
        never the active segment. Returns the deleted paths.
        """
        deleted: list[Path] = []
        while len(self._segments) > 1 and self._segments[0].max_index <= snapshot_index:
            segment = self._segments.pop(0)
            segment.path.unlink()
            deleted.append(segment.path)
        if deleted:
            fsync_directory(self.directory)
        return deleted

    def segment_paths(self) -> list[Path]:
        return [segment.path for segment in self._segments]

    def close(self) -> None:
        self._writer.close()


def _max_index(batch: WalBatch) -> int:
    highest = batch.entries[-1].index if batch.entries else 0
    if batch.installed_snapshot is not None:
        highest = max(highest, batch.installed_snapshot.index)
    return highest
