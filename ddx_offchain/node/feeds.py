"""Execution-update feeds: a ring of recent updates, history for older ones, and live subscribers.

A subscriber gets either a snapshot at ordinal N followed by every matching update after N, or (when it resumes)
every matching update after the ordinal it names, then the live ones. The backlog is computed and the subscriber
registered in one synchronous step on the event loop, so no update can fall between them: no gaps, no repeats.
The ring only forgets updates that history has persisted, so a resume is served from one or the other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from .history import History, update_json
from .state_machine import AppliedEntry

RING_SIZE = 100_000
MAX_RESUME = 50_000  # updates replayed on one resume; further back, page through GET /v1/updates first
SUBSCRIBER_QUEUE = 10_000


class ResumeUnavailable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(eq=False)
class Subscription:
    channel: str  # "all" | "trader" | "market"
    key: bytes | None
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
        self._ring: deque[tuple[int, dict, tuple[bytes, ...], bytes | None]] = deque()
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
            doc = update_json(u.ordinal, u.request_index, u.kind, u.traders, u.market, u.data)
            self._ring.append((u.ordinal, doc, u.traders, u.market))
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
                    sub.queue.put_nowait(doc)
                except asyncio.QueueFull:
                    sub.overflowed = True  # the connection is closed; the client resumes from its last ordinal
        self._trim()

    def _trim(self) -> None:
        persisted = self.history.persisted_ordinal if self.history is not None else None
        while len(self._ring) > self.ring_size and (persisted is None or self._ring[0][0] <= persisted):
            self._ring.popleft()

    def subscribe(self, channel: str, key: bytes | None, after: int | None) -> tuple[Subscription, list[dict]]:
        """Register a subscriber; returns it with its backlog (updates after `after`, or [] for a fresh snapshot)."""
        sub = Subscription(channel, key)
        backlog = [] if after is None else self.backlog(after, sub)
        self._subscribers.add(sub)
        if channel == "all":
            self._all.add(sub)
        else:
            self._by_key.setdefault((channel, key), set()).add(sub)
        return sub, backlog

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

    def backlog(self, after: int, sub: Subscription) -> list[dict]:
        if after > self.last_ordinal:
            raise ResumeUnavailable("bad_ordinal", f"ordinal {after} is in the future (last is {self.last_ordinal})")
        oldest = self._ring[0][0] if self._ring else self.last_ordinal + 1
        items: list[dict] = []
        if after + 1 < oldest:
            if self.history is None or self.history.persisted_ordinal < oldest - 1 or after < self.gap_below:
                raise ResumeUnavailable("resume_unavailable", "those updates are no longer held by this node")
            if oldest - 1 - after > MAX_RESUME:
                raise ResumeUnavailable("resume_too_old", f"more than {MAX_RESUME} updates back: page GET /v1/updates")
            trader = sub.key if sub.channel == "trader" else None
            market = sub.key if sub.channel == "market" else None
            items = self.history.updates(after, MAX_RESUME, trader=trader, market=market, upto=oldest - 1)
        items.extend(doc for ordinal, doc, traders, market in self._ring if ordinal > after and sub.matches(traders, market))
        return items

    def recent(self, after: int, limit: int, trader: bytes | None, market: bytes | None) -> list[dict] | None:
        """Updates after `after` from the ring, or None when the ring no longer reaches back that far."""
        if not self._ring or self._ring[0][0] > after + 1:
            return None if self._ring or after < self.last_ordinal else []
        if after < self.gap_below:
            return None
        out = []
        for ordinal, doc, t, m in self._ring:
            if ordinal <= after or (trader is not None and trader not in t) or (market is not None and m != market):
                continue
            out.append(doc)
            if len(out) >= limit:
                break
        return out
