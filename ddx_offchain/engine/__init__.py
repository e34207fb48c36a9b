"""Deterministic perpetual-futures exchange engine. Pure: no clock, no I/O, integers only (docs/engine.md).

    engine = Engine(GenesisConfig(tokens=(usdc,), markets=(params,)))
    updates = engine.apply(command)      # Accepted/Rejected first, then what changed
    engine.state_root(); engine.snapshot(); Engine.restore(data); engine.epoch_proofs(epoch, trader, token)
"""

from . import commands, updates
from .commands import decode_command, encode_command, from_request
from .config import GenesisConfig
from .engine import Engine, mark_price
from .errors import CommandDecodeError, ConfigError, EngineError, SnapshotError, UnknownEpochError
from .reasons import CancelReason, Reject

__all__ = [
    "CancelReason", "CommandDecodeError", "ConfigError", "Engine", "EngineError", "GenesisConfig", "Reject",
    "SnapshotError", "UnknownEpochError", "from_request", "commands", "decode_command", "encode_command",
    "mark_price", "updates",
]
