"""Typed errors raised by the engine's boundaries (command decoding, snapshots, configuration), and the one raised
when an invariant that must never break does (`EngineInvariantError`).

A request the engine can parse but must refuse is not an error: it yields a `Rejected` update with a reason
code (reasons.py) and changes nothing.
"""

from ..errors import DdxError


class EngineError(DdxError, ValueError):
    """Base class of every engine error."""

    reason = "engine_error"


class EngineInvariantError(DdxError, AssertionError):
    """An invariant of the engine's state broke: a bug, never bad input. Always checked (not `assert`, which
    `python -O` strips); the node stops applying rather than carry a wrong state forward (docs/engine.md)."""

    reason = "engine_invariant"


class CommandDecodeError(EngineError):
    """Bytes that are not a well-formed engine command (docs/engine.md, "Command encoding")."""

    reason = "malformed_command"


class SnapshotError(EngineError):
    """A snapshot with a wrong magic, version, checksum or content."""

    reason = "bad_snapshot"


class ConfigError(EngineError):
    """A genesis configuration or market parameter set that breaks a documented rule."""

    reason = "bad_config"


class UnknownEpochError(EngineError):
    """Proofs were asked for an epoch that was never frozen or is no longer retained."""

    reason = "unknown_epoch"
