"""Snapshot files: the state machine's image at an applied index, written atomically.

A snapshot file holds the metadata (index = the last applied index it covers, its term, the membership) and the
state machine bytes in one file, each part framed with a CRC32C like the log. Because both are in one file that
is renamed into place, the applied index can never disagree with the state it describes.

File name: ``{index:016x}-{term:016x}.snap``. Older snapshots beyond ``keep`` are deleted after a new one is durable.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec

from ddx_offchain.raft.messages import Snapshot, SnapshotMetadata

from .errors import CorruptSegmentError, CorruptSnapshotError
from .fileio import atomic_write, fsync_directory
from .segment import encode_frame, scan_frames

SNAPSHOT_MAGIC = b"DDXSNP\x00\x01"
SUFFIX = ".snap"

_metadata_encoder = msgspec.msgpack.Encoder()
_metadata_decoder = msgspec.msgpack.Decoder(SnapshotMetadata)


def snapshot_file_name(metadata: SnapshotMetadata) -> str:
    return f"{metadata.index:016x}-{metadata.term:016x}{SUFFIX}"


class SnapshotStore:
    def __init__(self, directory: Path, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.directory = Path(directory)
        self.keep = keep
        # The runtime saves its own snapshots on a snapshot thread while the log thread may save one received
        # from the leader: one save (temporary file, rename, prune) at a time.
        self._saving = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"*{SUFFIX}.tmp"):
            stale.unlink()  # a save that crashed before its rename: never part of the durable state

    def save(self, snapshot: Snapshot) -> Path:
        """Write the snapshot durably (file and directory fsync'd) and prune older ones."""
        if snapshot.is_empty():
            raise ValueError("refusing to save an empty snapshot")
        path = self.directory / snapshot_file_name(snapshot.metadata)
        metadata_frame = encode_frame(_metadata_encoder.encode(snapshot.metadata))
        # An empty state machine image is legal; frames are never empty, so prefix one marker byte.
        data_frame = encode_frame(b"\x00" + snapshot.data)
        with self._saving:
            atomic_write(path, [SNAPSHOT_MAGIC, metadata_frame, data_frame])
            self._prune()
        return path

    def load_latest(self) -> Snapshot | None:
        """The newest snapshot, or None. A damaged newest snapshot is an error, never silently skipped:
        the log before it may already be compacted away."""
        files = self._files()
        if not files:
            return None
        return read_snapshot_file(files[-1])

    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))

    def _prune(self) -> None:
        files = self._files()
        doomed = files[: -self.keep]
        for path in doomed:
            path.unlink()
        if doomed:
            fsync_directory(self.directory)


def read_snapshot_file(path: Path) -> Snapshot:
    data = path.read_bytes()
    if not data.startswith(SNAPSHOT_MAGIC):
        raise CorruptSnapshotError(path, "bad snapshot magic")
    # Same framing as log segments; a snapshot is sealed (renamed into place after fsync), so any damage
    # is corruption, never a torn tail.
    try:
        scanned = scan_frames(path, data, len(SNAPSHOT_MAGIC), is_last=False)
    except CorruptSegmentError as exc:
        raise CorruptSnapshotError(path, f"{exc.reason} at offset {exc.offset}") from None
    if len(scanned.payloads) != 2 or bytes(scanned.payloads[1][:1]) != b"\x00":
        raise CorruptSnapshotError(path, "expected a metadata frame and a data frame")
    try:
        metadata = _metadata_decoder.decode(scanned.payloads[0])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CorruptSnapshotError(path, f"undecodable metadata: {exc}") from None
    if path.name != snapshot_file_name(metadata):
        raise CorruptSnapshotError(path, f"file name does not match its metadata (index {metadata.index})")
    return Snapshot(metadata=metadata, data=bytes(scanned.payloads[1][1:]))

