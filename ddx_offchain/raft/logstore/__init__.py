"""Durable storage for Raft: write-ahead log segments, snapshot files, and the `Storage` the core reads."""

from .disk_storage import DiskStorage, PendingWrite
from .errors import CorruptSegmentError, CorruptSnapshotError, LogGapError, LogStoreError
from .snapshots import SnapshotStore
from .wal import WalBatch, WriteAheadLog

__all__ = [
    "CorruptSegmentError",
    "CorruptSnapshotError",
    "DiskStorage",
    "LogGapError",
    "LogStoreError",
    "PendingWrite",
    "SnapshotStore",
    "WalBatch",
    "WriteAheadLog",
]
