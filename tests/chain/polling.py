"""Waiting on a live devnet: poll a condition until it holds or a timeout says what never happened."""

from __future__ import annotations

import asyncio
import inspect
import time


async def eventually(predicate, what: str, timeout_s: float = 30.0, interval_s: float = 0.1):
    """Return the first truthy result of `predicate()` (a plain or an async callable); fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")
