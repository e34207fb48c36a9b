"""Typed errors raised by the engine's boundaries (command decoding, snapshots, configuration).

A request the engine can parse but must refuse is not an error: it yields a `Rejected` update with a reason
code (reasons.py) and changes nothing.
"""


class EngineError(ValueError):
    """Base class of every engine error."""


class CommandDecodeError(EngineError):
    """Bytes that are not a well-formed engine command (docs/engine.md, "Command encoding")."""


class SnapshotError(EngineError):
    """A snapshot with a wrong magic, version, checksum or content."""


class ConfigError(EngineError):
    """A genesis configuration or market parameter set that breaks a documented rule."""


class UnknownEpochError(EngineError):
    """Proofs were asked for an epoch that was never frozen or is no longer retained."""
