"""The one root of every error ddx raises on purpose (`DdxError`), and the errors shared across layers.

Each error carries a stable, machine-readable `reason` (snake_case) beside its human message; the API edge maps
reasons to HTTP statuses, nothing below it knows about HTTP. Imports nothing, so every layer may import it.
"""

from __future__ import annotations


class DdxError(Exception):
    """Base of every deliberate ddx error. `reason` is a stable code; `str(error)` is the human message."""

    reason: str = "error"

    def __init__(self, *args: object, reason: str | None = None) -> None:
        super().__init__(*args)
        if reason is not None:
            self.reason = reason


class ConfigError(DdxError, ValueError):
    """A config or genesis file that is missing, malformed or inconsistent; the message names the field."""

    reason = "bad_config"
