"""The engine's genesis file (JSON), read into `GenesisConfig` with typed errors.

    {"tokens": ["0x…"],                      collateral tokens; the first is the default
     "markets": [{"market": "ETHP" | "0x…64", "token": "0x…", "tick": 10000, … every MarketParams field}],
     "max_open_orders": 200, "max_strategies": 16, "epochs_retained": 4}   (optional)

Integers are JSON numbers or decimal strings; addresses and ids are hex. Every operator must use the same file:
it is part of the state every node derives.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from ..engine.config import GenesisConfig
from ..engine.errors import ConfigError as EngineConfigError
from ..errors import ConfigError
from ..protocol.eip712 import from_json
from ..protocol.errors import ProtocolError
from ..protocol.requests import market_id

MAX_GENESIS_BYTES = 1 << 20


def _bytes_id(value, field: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x"):
        return from_json("bytes32", field, value)
    if isinstance(value, str):
        return market_id(value)
    raise ProtocolError(f"{field}: a market name or 0x-prefixed bytes32")


def _int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ProtocolError(f"{field}: an integer")
    if isinstance(value, str):
        return from_json("uint256", field, value)
    return value


def parse_genesis(doc) -> GenesisConfig:
    try:
        if not isinstance(doc, dict):
            raise ProtocolError("genesis must be a JSON object")
        out = dict(doc)
        out["tokens"] = tuple(from_json("address", f"tokens[{i}]", t) for i, t in enumerate(doc.get("tokens", [])))
        markets = []
        for i, m in enumerate(doc.get("markets", [])):
            if not isinstance(m, dict):
                raise ProtocolError(f"markets[{i}] must be an object")
            fields = {}
            for name, value in m.items():
                where = f"markets[{i}].{name}"
                if name == "market":
                    fields[name] = _bytes_id(value, where)
                elif name == "token":
                    fields[name] = from_json("address", where, value)
                elif name == "active":
                    fields[name] = value
                else:
                    fields[name] = _int(value, where)
            markets.append(fields)
        out["markets"] = markets
        config = msgspec.convert(out, GenesisConfig)
        config.validate()
        return config
    except (ProtocolError, msgspec.ValidationError, EngineConfigError) as exc:
        raise ConfigError(f"genesis: {exc}") from None


def load_genesis(path: Path) -> GenesisConfig:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"engine.genesis: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_GENESIS_BYTES:
        raise ConfigError("engine.genesis: larger than 1 MiB")
    try:
        return parse_genesis(json.loads(raw))
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"engine.genesis: not JSON: {exc}") from None


def example_genesis(token: str) -> dict:
    """A genesis document with one collateral token and one perpetual market, ETHP, priced in it: what the devnet,
    the local cluster tests and the end-to-end benchmark run."""
    return {
        "tokens": [token],
        "markets": [{
            "market": "ETHP", "token": token, "tick": 10_000, "lot": 1_000, "size_decimals": 6,
            "initial_margin_bps": 1_000, "maintenance_margin_bps": 500, "maker_fee_bps": 2, "taker_fee_bps": 5,
            "liquidation_fee_bps": 50, "market_order_band_bps": 500, "premium_cap_bps": 100, "funding_cap_bps": 75,
            "funding_dampener": 8, "funding_interval_ms": 3_600_000, "max_order_notional": "10000000000000",
            "active": True,
        }],
    }
