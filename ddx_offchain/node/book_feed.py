"""Live subscribers of the L2 book feed (`GET /v1/ws?channel=book&key=<market>`): each gets the book deltas of
its market as entries apply (node/market_data.py makes them). A subscriber is registered in the same synchronous
step as the snapshot or backlog it starts from, so its queue holds exactly the deltas after that; one that falls
SUBSCRIBER_QUEUE deltas behind is marked overflowed and closed (the client resumes from its last sequence
number, or re-syncs from a snapshot)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .market_data import BookDelta

SUBSCRIBER_QUEUE = 10_000


@dataclass(eq=False)
class BookSubscription:
    market: bytes
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    overflowed: bool = False


class BookHub:
    def __init__(self) -> None:
        self._by_market: dict[bytes, set[BookSubscription]] = {}

    def subscribe(self, market: bytes) -> BookSubscription:
        sub = BookSubscription(market)
        self._by_market.setdefault(market, set()).add(sub)
        return sub

    def unsubscribe(self, sub: BookSubscription) -> None:
        group = self._by_market.get(sub.market)
        if group is not None:
            group.discard(sub)
            if not group:
                del self._by_market[sub.market]

    def subscriber_count(self) -> int:
        return sum(len(g) for g in self._by_market.values())

    def publish(self, deltas: list[BookDelta]) -> None:
        for delta in deltas:
            for sub in self._by_market.get(delta.market, ()):
                if sub.overflowed:
                    continue
                try:
                    sub.queue.put_nowait(delta)
                except asyncio.QueueFull:
                    sub.overflowed = True
