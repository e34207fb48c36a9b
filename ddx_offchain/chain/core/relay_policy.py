"""Who relays a checkpoint, when, and at what fee. Pure: every time is an argument, no clock, no randomness.

- Relay order: one relayer at a time, chosen deterministically by epoch: the operators in the contract's order
  (ascending address), rotated by `epoch mod n`. The first has the first `timeout` seconds after the quorum
  exists, then the second may send too, and so on; an earlier relayer keeps trying meanwhile. Two transactions
  for the same epoch are harmless: the second reverts ("epoch not after the latest") or is never mined.
- Fees (EIP-1559): max fee = 2 × base fee + tip, capped; the tip grows by `bump_percent` (≥ 10 %, what nodes
  require to replace a pending transaction) on each attempt. When the base fee alone is above the cap, nothing is
  sent: the checkpoint waits for fees to come down and says so (`FeeTooHigh`).
- Backoff: `initial × factor^failures`, capped at `maximum`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import DdxError
from ...protocol import operator_messages as om

GWEI = 10**9
MIN_REPLACEMENT_BUMP_PERCENT = 10


def relay_order(epoch: int, members: tuple[str, ...]) -> list[str]:
    """The operators in the order they take turns relaying `epoch`."""
    ordered = list(om.sort_operators(members))
    start = epoch % len(ordered)
    return ordered[start:] + ordered[:start]


def may_relay(epoch: int, members: tuple[str, ...], me: str, seconds_since_quorum: float, timeout: float) -> bool:
    """Whether `me` may send the checkpoint of `epoch` now: its turn has come (earlier ones had `timeout` each)."""
    if seconds_since_quorum < 0:
        return False
    order = relay_order(epoch, members)
    try:
        position = order.index(om.sort_operators([me])[0])
    except ValueError:
        return False
    return seconds_since_quorum >= position * timeout


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


class FeeTooHigh(DdxError):
    """The network's base fee is above the configured cap: the checkpoint waits instead of overpaying."""

    def __init__(self, base_fee: int, cap: int) -> None:
        super().__init__(f"base fee {base_fee / GWEI:.3f} gwei is above the cap {cap / GWEI:.3f} gwei: waiting")
        self.base_fee = base_fee
        self.cap = cap


@dataclass(frozen=True, slots=True)
class FeePolicy:
    max_fee_cap: int = 200 * GWEI  # never offer more than this per gas
    priority_fee: int = 1 * GWEI  # tip on the first attempt
    bump_percent: int = 25  # tip (and max fee) increase per attempt
    base_fee_multiplier: int = 2  # headroom for base-fee growth while the tx waits

    def __post_init__(self) -> None:
        if self.bump_percent < MIN_REPLACEMENT_BUMP_PERCENT:
            raise ValueError(f"bump_percent must be at least {MIN_REPLACEMENT_BUMP_PERCENT} to replace a pending tx")
        if not 0 < self.priority_fee <= self.max_fee_cap:
            raise ValueError("priority_fee must be positive and at most max_fee_cap")
        if self.base_fee_multiplier < 1:
            raise ValueError("base_fee_multiplier must be at least 1")

    def fees(self, base_fee: int, attempt: int, previous: Fees | None = None) -> Fees:
        """Fees for attempt `attempt` (0-based) at the current `base_fee`. A replacement (previous given) bids at
        least `bump_percent` more on both fields, as nodes require, unless the cap forbids it (FeeTooHigh)."""
        if base_fee < 0 or attempt < 0:
            raise ValueError("base_fee and attempt are non-negative")
        if base_fee > self.max_fee_cap:
            raise FeeTooHigh(base_fee, self.max_fee_cap)
        tip = self.priority_fee
        for _ in range(attempt):
            tip = _bumped(tip, self.bump_percent)
        max_fee = base_fee * self.base_fee_multiplier + tip
        if previous is not None:
            tip = max(tip, _bumped(previous.max_priority_fee_per_gas, self.bump_percent))
            max_fee = max(max_fee, _bumped(previous.max_fee_per_gas, self.bump_percent))
        max_fee = min(max_fee, self.max_fee_cap)
        tip = min(tip, max_fee)
        if previous is not None and (
            max_fee < _bumped(previous.max_fee_per_gas, self.bump_percent)
            or tip < _bumped(previous.max_priority_fee_per_gas, self.bump_percent)
        ):
            raise FeeTooHigh(max(base_fee, previous.max_fee_per_gas), self.max_fee_cap)
        if max_fee < base_fee:
            raise FeeTooHigh(base_fee, self.max_fee_cap)
        return Fees(max_fee, tip)


def _bumped(value: int, percent: int) -> int:
    return value + (value * percent + 99) // 100


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.maximum, self.initial * self.factor ** (failures - 1))
