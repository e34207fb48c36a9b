"""Index prices: aggregation of source observations, the leader's publishing rule, and every operator's check of
the prices the log sequenced. Pure and integer-only; the shell (chain/price_feed.py) reads the sources and the
clock.

A price is an integer in the market's price unit (token base units per whole contract, like the engine's). Rules
(docs/operations.md, "Index prices"):

- **Fresh**: a source's observation counts if it is at most `staleness_ms` old.
- **Median**: of the fresh values (the lower-middle one for an even count, so the result is always one a source
  reported).
- **Outliers**: a value further than `outlier_bps` from that median is dropped and the median is taken again over
  the rest; fewer than `min_sources` left means no price.
- **Clamp**: a published price moves at most `max_change_bps` from the last sequenced one (a sudden jump takes
  several updates; a broken source cannot teleport the index).
- **Publish**: the leader sequences a market's price when `cadence_ms` passed since the last one, or at once when
  the clamped aggregate moved `move_bps` or more from it.
- **Verify**: an operator compares each sequenced price with its own aggregates observed within `window_ms` of the
  moment it applied the command, clamped the same way against the previous sequenced price: within `tolerance_bps`
  of one of them it is confirmed; own aggregates that all disagree make it a mismatch (never sign a state that
  contains it); no own aggregate in the window (its sources were down, or it applied the command while catching
  up) leaves it unverified — counted and reported, not a reason to refuse, since this operator saw nothing to
  refute it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from ...errors import DdxError

BPS = 10_000


class PriceError(DdxError, ValueError):
    """Price rules or observations that cannot be used (the message says which)."""


@dataclass(frozen=True, slots=True)
class PriceRules:
    staleness_ms: int = 30_000
    outlier_bps: int = 200
    min_sources: int = 1
    max_change_bps: int = 500
    cadence_ms: int = 5_000
    move_bps: int = 10
    tolerance_bps: int = 50
    window_ms: int = 5_000

    def __post_init__(self) -> None:
        for name in ("staleness_ms", "cadence_ms", "window_ms"):
            if not 0 < getattr(self, name) <= 86_400_000:
                raise PriceError(f"{name}: must be in 1..86400000")
        for name in ("outlier_bps", "max_change_bps", "move_bps", "tolerance_bps"):
            if not 0 < getattr(self, name) <= BPS:
                raise PriceError(f"{name}: must be in 1..{BPS}")
        if not 0 < self.min_sources <= 64:
            raise PriceError("min_sources: must be in 1..64")


@dataclass(frozen=True, slots=True)
class Observation:
    source: str
    price: int
    at_ms: int


@dataclass(frozen=True, slots=True)
class Aggregate:
    price: int
    at_ms: int
    used: tuple[str, ...]  # the sources the median was taken over
    dropped: tuple[str, ...]  # fresh sources dropped as outliers


@dataclass(frozen=True, slots=True)
class NoPrice:
    reason: str


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _deviation_bps_exceeds(value: int, reference: int, bps: int) -> bool:
    return abs(value - reference) * BPS > reference * bps


def aggregate(observations: Iterable[Observation], now_ms: int, rules: PriceRules) -> Aggregate | NoPrice:
    """The median of the fresh, non-outlier observations (one per source: the newest), or why there is none."""
    newest: dict[str, Observation] = {}
    for o in observations:
        if type(o.price) is not int or o.price <= 0:
            continue
        if o.source not in newest or o.at_ms > newest[o.source].at_ms:
            newest[o.source] = o
    fresh = [o for o in newest.values() if now_ms - o.at_ms <= rules.staleness_ms and o.at_ms <= now_ms]
    if len(fresh) < rules.min_sources:
        return NoPrice(f"{len(fresh)} fresh source(s) of {len(newest)}, {rules.min_sources} needed")
    first = _median([o.price for o in fresh])
    kept = [o for o in fresh if not _deviation_bps_exceeds(o.price, first, rules.outlier_bps)]
    dropped = tuple(sorted(o.source for o in fresh if o not in kept))
    if len(kept) < rules.min_sources:
        return NoPrice(f"sources disagree: {len(kept)} within {rules.outlier_bps} bps of the median, {rules.min_sources} needed")
    return Aggregate(_median([o.price for o in kept]), max(o.at_ms for o in kept), tuple(sorted(o.source for o in kept)), dropped)


def clamp(price: int, previous: int | None, max_change_bps: int) -> int:
    """`price` moved at most `max_change_bps` from `previous` (unchanged when there is no previous price)."""
    if previous is None:
        return price
    step = previous * max_change_bps // BPS
    return max(previous - step, min(previous + step, price))


def due(candidate: int, last_price: int | None, last_at_ms: int | None, now_ms: int, rules: PriceRules) -> bool:
    """Whether the leader should sequence `candidate` (already clamped) now."""
    if last_price is None or last_at_ms is None:
        return True
    if now_ms - last_at_ms >= rules.cadence_ms:
        return True
    return abs(candidate - last_price) * BPS >= last_price * rules.move_bps


class Verdict(str, Enum):
    CONFIRMED = "confirmed"
    PENDING = "pending"  # the window after the apply time is not over: own observations may still come
    UNVERIFIED = "unverified"  # nothing of its own to compare with: reported, not refused
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class SequencedPrice:
    seq: int  # order of sequencing on this node (the ledger's own counter)
    epoch: int  # the engine epoch it was applied in: part of every frozen epoch after it
    market: bytes
    price: int
    previous: int | None  # the market's sequenced price before it
    applied_at_ms: int  # this operator's clock when it applied the command
    live: bool  # applied as it was committed (not while catching up)


@dataclass(frozen=True, slots=True)
class PriceCheck:
    verdict: Verdict
    reason: str


def verify_price(p: SequencedPrice, own: Sequence[Aggregate], now_ms: int, rules: PriceRules) -> PriceCheck:
    """Judge one sequenced price against this operator's own aggregates for its market."""
    label = f"index price {p.price} of market 0x{p.market.rstrip(bytes(1)).hex()} (sequenced #{p.seq})"
    if not p.live:
        return PriceCheck(Verdict.UNVERIFIED, f"{label}: applied while catching up, no observation of that moment")
    near = [a for a in own if abs(a.at_ms - p.applied_at_ms) <= rules.window_ms]
    if not near:
        if now_ms - p.applied_at_ms <= rules.window_ms:
            return PriceCheck(Verdict.PENDING, f"{label}: waiting for this operator's own observations")
        return PriceCheck(Verdict.UNVERIFIED, f"{label}: this operator's sources gave no price within {rules.window_ms} ms")
    expected = [clamp(a.price, p.previous, rules.max_change_bps) for a in near]
    if any(not _deviation_bps_exceeds(p.price, e, rules.tolerance_bps) for e in expected):
        return PriceCheck(Verdict.CONFIRMED, f"{label}: within {rules.tolerance_bps} bps of this operator's sources")
    closest = min(expected, key=lambda e: abs(e - p.price))
    return PriceCheck(
        Verdict.MISMATCH,
        f"{label}: this operator's sources gave {closest} (clamped) around that time, more than "
        f"{rules.tolerance_bps} bps away",
    )


class PriceLedger:
    """The index prices the log sequenced, in order, and what this operator found when it checked them."""

    def __init__(self) -> None:
        self._prices: list[SequencedPrice] = []
        self._results: dict[int, PriceCheck] = {}
        self._last: dict[bytes, SequencedPrice] = {}  # each market's latest sequenced price
        self._seq = 0
        self.unverified = 0
        self.mismatched = 0

    def record(self, epoch: int, market: bytes, price: int, applied_at_ms: int, live: bool) -> SequencedPrice:
        self._seq += 1
        p = SequencedPrice(self._seq, epoch, market, price, self.last(market), applied_at_ms, live)
        self._last[market] = p
        self._prices.append(p)
        return p

    def last(self, market: bytes) -> int | None:
        """The market's latest sequenced price."""
        latest = self._last.get(market)
        return None if latest is None else latest.price

    def last_at(self, market: bytes) -> int | None:
        """When (this operator's clock) the market's latest price was applied."""
        latest = self._last.get(market)
        return None if latest is None else latest.applied_at_ms

    def unchecked(self) -> list[SequencedPrice]:
        return [p for p in self._prices if p.seq not in self._results or self._results[p.seq].verdict is Verdict.PENDING]

    def set_result(self, p: SequencedPrice, check: PriceCheck) -> None:
        previous = self._results.get(p.seq)
        if previous is not None and previous.verdict is not Verdict.PENDING:
            return  # final once decided
        if check.verdict is Verdict.UNVERIFIED:
            self.unverified += 1
        elif check.verdict is Verdict.MISMATCH:
            self.mismatched += 1
        self._results[p.seq] = check

    def verdict_for_epoch(self, epoch: int) -> PriceCheck | None:
        """For the state frozen as `epoch` (every price applied in an earlier epoch): the first mismatch, else the
        first price still pending, else None (every one confirmed or unverified)."""
        pending = None
        for p in self._prices:
            if p.epoch >= epoch:
                break
            check = self._results.get(p.seq)
            if check is not None and check.verdict is Verdict.MISMATCH:
                return check
            if pending is None and (check is None or check.verdict is Verdict.PENDING):
                pending = check or PriceCheck(Verdict.PENDING, f"index price #{p.seq} not checked yet")
        return pending

    def forget_before(self, epoch: int) -> None:
        """Drop decided, non-mismatch prices applied before `epoch` once a checkpoint covering them is final."""
        keep = []
        for p in self._prices:
            check = self._results.get(p.seq)
            if p.epoch < epoch and check is not None and check.verdict in (Verdict.CONFIRMED, Verdict.UNVERIFIED):
                del self._results[p.seq]
                continue
            keep.append(p)
        self._prices = keep

    def mismatches(self) -> list[PriceCheck]:
        return [c for c in self._results.values() if c.verdict is Verdict.MISMATCH]

    def __len__(self) -> int:
        return len(self._prices)
