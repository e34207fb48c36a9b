"""docs/protocol.md §2, executable: for every item kind the engine writes, the value's words decode with exactly
the ABI types the spec's table lists, in that order (a missing, extra or too-narrow field fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from eth_abi import decode, encode

from ddx_offchain.deployment.artifacts import REPO_ROOT
from ddx_offchain.engine.commands import (
    BUY,
    MARKET,
    SELL,
    ApproveAgent,
    CreateStrategy,
    PlaceTrigger,
    PlaceTwap,
    ScheduleCancel,
    name32,
)
from ddx_offchain.protocol.items import Kind

SPEC = Path(REPO_ROOT / "docs/protocol.md").read_text()


def _spec_types() -> dict[tuple[int, str], list[str]]:
    """(kind byte, identity) -> the value's ABI types after the kind, from the §2 table."""
    section = SPEC[SPEC.index("## 2. Items"):SPEC.index("## 3. Tree shape")]
    out = {}
    for name, byte, identity, fields in re.findall(r"^\| ([A-Z_]+) \| 0x([0-9A-F]{2}) \| `([^`]*)`[^|]* \| `([^`]*)`", section, re.M):
        types = [f.strip().split(" ")[0] for f in fields.split(",")]
        out[(int(byte, 16), identity)] = types
    return out


def test_every_item_the_engine_writes_decodes_with_the_spec_types():
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tests/engine"))
    from engine_helpers import ONE, Driver, trader, usd

    d = Driver()
    a, b = trader(1), trader(2)
    d.deposit(a, usd(10_000))
    d.deposit(b, usd(10_000))
    d.apply(CreateStrategy(d.rid(), a, name32("second")))
    d.price(usd(2000))
    d.order(a, SELL, usd(2000), 2 * ONE)
    d.order(b, BUY, usd(2000), ONE)  # a position each, and a resting order
    d.withdraw(b, usd(100))
    d.apply(ApproveAgent(d.rid(), a, name32("main"), trader(9), 1, 10_000))
    d.apply(ScheduleCancel(d.rid(), a, name32("main"), b"\x00" * 32, 10_000))
    d.apply(PlaceTrigger(d.rid(), b, name32("main"), name32("ETHP"), SELL, 1, usd(1500), MARKET, 0, 0, True, True,
                         b"\x07" * 32, b"\x08" * 32))
    d.apply(PlaceTwap(d.rid(), a, name32("main"), name32("ETHP"), BUY, 5 * ONE, 60_000, 1_000, usd(1900), False))
    d.epoch()
    spec = _spec_types()
    engine = d.engine
    engine.flush()
    seen = set()
    for key, value in engine.tree.copy_items().items():
        kind = key[0]
        kind_word, *_ = decode(["uint8"], value[:32])
        assert kind_word == kind
        candidates = [types for (k, _), types in spec.items() if k == kind]
        assert candidates, f"kind 0x{kind:02x} is not in docs/protocol.md §2"
        matched = False
        for types in candidates:
            if len(value) != 32 * (len(types) + 1):
                continue
            try:
                fields = decode(types, value[32:], strict=True)
            except Exception:
                continue
            assert encode(types, fields) == value[32:]
            matched = True
        assert matched, f"kind {Kind(kind).name}: {len(value) // 32 - 1} field words, no §2 row decodes them"
        seen.add(kind)
    assert {Kind.TRADER, Kind.STRATEGY, Kind.POSITION, Kind.ORDER, Kind.PRICE, Kind.MARKET, Kind.SYSTEM,
            Kind.WITHDRAWAL, Kind.BALANCE, Kind.EPOCH, Kind.AGENT, Kind.SCHEDULE, Kind.TRIGGER, Kind.TWAP} <= seen
