"""A blocking face on `DdxClient`, for scripts and notebooks that do not run an event loop.

`SyncDdxClient` runs one asyncio loop on a private thread and forwards every `DdxClient` method to it: coroutine
methods block until their result, async-iterator methods (`stream`, `book_stream`) become plain iterators, and plain
methods (`verify`) run directly. The async client stays the one implementation; nothing here knows its methods.

    with SyncDdxClient(urls, domain, operators) as client:
        receipt = client.submit(trader.place_order("ETHP", 0, 1_000_000, 2_000_000_000))
        for update in client.stream("trader", "0x" + trader.address.hex()):
            ...
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from typing import Any

from .api import DdxClient


class SyncDdxClient:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The arguments of `DdxClient` (or `client=` an existing one, used from the private loop only)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ddx-sync-client", daemon=True)
        self._thread.start()
        given = kwargs.pop("client", None)
        self._client: DdxClient = given if given is not None else self._call(self._make(args, kwargs))

    @classmethod
    def from_manifest(cls, urls, manifest_path: str, **options: Any) -> "SyncDdxClient":
        return cls(client=DdxClient.from_manifest(urls, manifest_path, **options))

    @staticmethod
    async def _make(args, kwargs) -> DdxClient:
        return DdxClient(*args, **kwargs)  # made on the loop that will use it

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if inspect.iscoroutinefunction(attribute):
            return lambda *args, **kwargs: self._call(attribute(*args, **kwargs))
        if inspect.isasyncgenfunction(attribute):
            return lambda *args, **kwargs: self._iterate(attribute(*args, **kwargs))
        return attribute

    def _iterate(self, agen) -> Iterator:
        try:
            while True:
                try:
                    yield self._call(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._call(agen.aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> "SyncDdxClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
