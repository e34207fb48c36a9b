"""Sequenced time: the leader sequences `AdvanceTime(now)` from its clock (funding intervals, and every later rule
that runs on the engine's clock, follow it); every operator checks each sequenced time against its own clock when it
applies the command, and refuses to sign a state containing a time further off than `tolerance_ms`. Pure: the
shell passes the clocks in.

A leader with a clock far ahead could otherwise make funding intervals pass at will. Only "ahead" is refused: an
operator applies a command at or after the moment it was sequenced, so a sequenced time later than its own clock
plus the tolerance cannot be honest, while an earlier one may just mean this operator is catching up. A leader whose
clock lags (stalling funding) is therefore not refused here; the time it sequences is in `status()` for anyone to
compare.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TOLERANCE_MS = 10_000


@dataclass(frozen=True, slots=True)
class SequencedTime:
    epoch: int  # the engine epoch it was applied in: part of every frozen epoch after it
    time_ms: int
    applied_at_ms: int  # this operator's clock when it applied the command


@dataclass(frozen=True, slots=True)
class TimeMismatch:
    epoch: int
    reason: str


class ClockLedger:
    def __init__(self, tolerance_ms: int = DEFAULT_TOLERANCE_MS) -> None:
        if not 0 < tolerance_ms <= 3_600_000:
            raise ValueError("tolerance_ms: must be in 1..3600000")
        self.tolerance_ms = tolerance_ms
        self.mismatches: list[TimeMismatch] = []
        self.checked = 0
        self.latest: SequencedTime | None = None

    def record(self, t: SequencedTime) -> None:
        """Judge at once: the comparison needs nothing but the two clocks."""
        self.checked += 1
        self.latest = t
        ahead = t.time_ms - t.applied_at_ms
        if ahead > self.tolerance_ms:
            self.mismatches.append(TimeMismatch(
                t.epoch, f"sequenced time {t.time_ms} is {ahead / 1000:.1f} s ahead of this operator's clock "
                         f"(tolerance {self.tolerance_ms / 1000:.0f} s)",
            ))

    def verdict_for_epoch(self, epoch: int) -> TimeMismatch | None:
        """The first mismatch in the state frozen as `epoch` (times applied in an earlier epoch), if any."""
        return next((m for m in self.mismatches if m.epoch < epoch), None)

    def status(self) -> dict:
        latest = self.latest
        return {"checked": self.checked, "toleranceMs": self.tolerance_ms,
                "lastSequencedMs": None if latest is None else latest.time_ms,
                "lastOffsetMs": None if latest is None else latest.time_ms - latest.applied_at_ms,
                "mismatches": [m.reason for m in self.mismatches]}
