"""Execution-update feeds: a ring of recent updates, history for older ones, and live subscribers.

A subscriber gets either a snapshot at ordinal N followed by every matching update after N, or (when it resumes)
every matching update after the ordinal it names, then the live ones. A subscriber is registered first, in one
synchronous step that also fixes `start` (the last ordinal published before it): its queue gets exactly the
updates after `start`, and its backlog is exactly those in (after, start] — the part still in the ring copied in
that same step, the older part read from history on a worker thread, so a resume from far back never blocks the
event loop. The ring only forgets updates that history has persisted, so a resume is served from one or the
other. Updates travel typed (`ExecutionUpdate`); the API renders them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from ..errors import DdxError
from .history import History
from .state_machine import AppliedEntry, ExecutionUpdate

RING_SIZE = 100_000
MAX_RESUME = 50_000  # updates replayed on one resume; further back, page through GET /v1/updates first
SUBSCRIBER_QUEUE = 10_000


class ResumeUnavailable(DdxError):
    """A feed cannot resume from the ordinal asked: `bad_ordinal`, `resume_unavailable` or `resume_too_old`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


@dataclass(eq=False)
class Subscription:
    channel: str  # "all" | "trader" | "market"
    key: bytes | None
    start: int = 0  # the last ordinal published before it was registered: its queue holds every later one
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    overflowed: bool = False

    def matches(self, traders: tuple[bytes, ...], market: bytes | None) -> bool:
        if self.channel == "all":
            return True
        if self.channel == "trader":
            return self.key in traders
        return market == self.key


class FeedHub:
    def __init__(self, history: History | None, ring_size: int = RING_SIZE) -> None:
        self.history = history
        self.ring_size = ring_size
        self._ring: deque[ExecutionUpdate] = deque()
        self._subscribers: set[Subscription] = set()
        # subscribers indexed by what they listen to, so publishing costs per interested subscriber, not per feed
        self._all: set[Subscription] = set()
        self._by_key: dict[tuple[str, bytes], set[Subscription]] = {}
        self.last_ordinal = history.persisted_ordinal if history is not None else 0
        self.gap_below = 0  # updates at or below this may be missing from history (skipped by a snapshot)

    def restart_at(self, ordinal: int) -> None:
        """The state jumped (a snapshot was installed): updates up to `ordinal` were never seen here, so resumes
        from before it are answered from history only if history holds them, never with a silent gap."""
        self._ring.clear()
        self.last_ordinal = max(self.last_ordinal, ordinal)
        self.gap_below = max(self.gap_below, ordinal)

    def publish(self, applied: AppliedEntry) -> None:
        for u in applied.updates:
            self._ring.append(u)
            self.last_ordinal = u.ordinal
            if not self._subscribers:
                continue
            targets = list(self._all)
            for trader in u.traders:
                targets.extend(self._by_key.get(("trader", trader), ()))
            if u.market is not None:
                targets.extend(self._by_key.get(("market", u.market), ()))
            for sub in targets:
                if sub.overflowed:
                    continue
                try:
                    sub.queue.put_nowait(u)
                except asyncio.QueueFull:
                    sub.overflowed = True  # the connection is closed; the client resumes from its last ordinal
        self._trim()

    def _trim(self) -> None:
        persisted = self.history.persisted_ordinal if self.history is not None else None
        while len(self._ring) > self.ring_size and (persisted is None or self._ring[0].ordinal <= persisted):
            self._ring.popleft()

    def subscribe(self, channel: str, key: bytes | None) -> Subscription:
        """Register a subscriber: from now on its queue gets every matching update after `sub.start`."""
        sub = Subscription(channel, key, start=self.last_ordinal)
        self._subscribers.add(sub)
        if channel == "all":
            self._all.add(sub)
        else:
            self._by_key.setdefault((channel, key), set()).add(sub)
        return sub

    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        self._all.discard(sub)
        group = self._by_key.get((sub.channel, sub.key))
        if group is not None:
            group.discard(sub)
            if not group:
                del self._by_key[(sub.channel, sub.key)]

    async def backlog(self, after: int, sub: Subscription) -> list[ExecutionUpdate]:
        """The matching updates in (after, sub.start]: with the queue's, every update after `after` exactly once.
        The ring's part is copied before the first await (the ring may move on meanwhile); history's part, older
        than the ring, is read on a worker thread. ResumeUnavailable when neither holds them."""
        start = sub.start
        if after > start:
            raise ResumeUnavailable("bad_ordinal", f"ordinal {after} is in the future (last is {start})")
        oldest = self._ring[0].ordinal if self._ring else self.last_ordinal + 1
        from_ring = [u for u in self._ring if after < u.ordinal <= start and sub.matches(u.traders, u.market)]
        if after + 1 >= oldest:
            return from_ring
        if self.history is None or self.history.persisted_ordinal < oldest - 1 or after < self.gap_below:
            raise ResumeUnavailable("resume_unavailable", "those updates are no longer held by this node")
        if oldest - 1 - after > MAX_RESUME:
            raise ResumeUnavailable("resume_too_old", f"more than {MAX_RESUME} updates back: page GET /v1/updates")
        trader = sub.key if sub.channel == "trader" else None
        market = sub.key if sub.channel == "market" else None
        upto = min(oldest - 1, start)
        older = await asyncio.to_thread(self.history.updates, after, MAX_RESUME, trader=trader, market=market, upto=upto)
        return older + from_ring

    def recent(self, after: int, limit: int, trader: bytes | None, market: bytes | None) -> list[ExecutionUpdate] | None:
        """Updates after `after` from the ring, or None when the ring no longer reaches back that far."""
        if not self._ring or self._ring[0].ordinal > after + 1:
            return None if self._ring or after < self.last_ordinal else []
        if after < self.gap_below:
            return None
        out = []
        for u in self._ring:
            if u.ordinal <= after or (trader is not None and trader not in u.traders) or (market is not None and u.market != market):
                continue
            out.append(u)
            if len(out) >= limit:
                break
        return out
