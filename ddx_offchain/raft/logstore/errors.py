"""Typed errors of the durable stores: each names the file (and offset) an operator has to look at."""

from __future__ import annotations

from pathlib import Path

from ...errors import DdxError


class LogStoreError(DdxError):
    """Base class of every durable-store error."""


class CorruptSegmentError(LogStoreError):
    """A sealed part of a log segment fails its checksum or framing: the node must not start on it.

    Raised at open time, before anything is written, so the directory is left exactly as found.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"corrupt log segment {self.path} at offset {offset}: {reason}")


class CorruptSnapshotError(LogStoreError):
    """A snapshot file fails its checksum or cannot be decoded."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"corrupt snapshot {self.path}: {reason}")


class LogGapError(LogStoreError):
    """An append would leave a hole in the log (its first index is past last_index + 1)."""
