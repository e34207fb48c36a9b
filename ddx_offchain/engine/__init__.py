"""Deterministic perpetual-futures exchange engine. Pure: no clock, no I/O, integers only (docs/engine.md).

    engine = Engine(GenesisConfig(tokens=(usdc,), markets=(params,)))
    updates = engine.apply(command)      # Accepted/Rejected first, then what changed
    engine.state_root(); engine.snapshot(); Engine.restore(data); engine.epoch_proofs(epoch, trader, token)
"""

import sys

from .. import ENGINE_BUILD
from . import commands, updates
from .commands import decode_command, encode_command, from_request
from .config import GenesisConfig
from .engine import Engine, mark_price
from .errors import CommandDecodeError, ConfigError, EngineError, SnapshotError, UnknownEpochError
from .reasons import CancelReason, Reject

if ENGINE_BUILD == "stale":
    print("ddx: the compiled engine was built from other versions of ddx_offchain/engine/*.py; the engine runs in pure"
          " Python (rebuild it: make install, or pip install -e .)", file=sys.stderr)
elif ENGINE_BUILD == "not-built":
    print("ddx: the compiled engine is not built; the engine runs in pure Python, about 1.25x slower per request"
          " (reinstall with gcc, the Python headers and mypy present to build it)", file=sys.stderr)

__all__ = [
    "ENGINE_BUILD",
    "CancelReason", "CommandDecodeError", "ConfigError", "Engine", "EngineError", "GenesisConfig", "Reject",
    "SnapshotError", "UnknownEpochError", "from_request", "commands", "decode_command", "encode_command",
    "mark_price", "updates",
]
