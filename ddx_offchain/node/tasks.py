"""Background tasks of a node's parts (chain side, replica): cancelled together, each awaited to its end."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(tasks: list[asyncio.Task]) -> None:
    """Cancel every task, then wait for each; a task's own failure is not the stopper's (it was logged there)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
