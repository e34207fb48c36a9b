"""The wall clock in milliseconds, as every shell reads it (engines, trees and Raft never do: they take time from
the log)."""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    """Milliseconds of a clock that never goes back (intervals: rate limits), unrelated to the date."""
    return time.monotonic_ns() // 1_000_000
