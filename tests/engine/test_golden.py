"""Golden scenario: a fixed command log (deposits, trades, a liquidation, funding, a withdrawal, an epoch) with its
expected updates and state root checked in, so any change to the engine's semantics shows up in review.

Regenerate after an intended change (and review the diff of golden/scenario.json):
    DDX_ENGINE_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/engine/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
from engine_helpers import USDC, Driver, market_params, trader, usd

from ddx_offchain.engine import Engine, GenesisConfig, decode_command, encode_command
from ddx_offchain.engine.commands import (
    BUY,
    LIMIT,
    LIMIT_IOC,
    MARKET,
    SELL,
    ZERO_ID,
    ApproveAgent,
    Batch,
    BatchAction,
    Deposit,
    FundInsurance,
    PlaceTrigger,
    PlaceTwap,
    RevokeAgent,
)
from ddx_offchain.engine.commands import MAIN_STRATEGY as MAIN
from ddx_offchain.protocol import requests as pr

GOLDEN = Path(__file__).parent / "golden" / "scenario.json"
A, B, C = trader(1), trader(2), trader(3)
ONE = 1_000_000


def genesis() -> GenesisConfig:
    return GenesisConfig(tokens=(USDC,), markets=(market_params(),))


def build_scenario() -> list:
    d = Driver(Engine(genesis()))
    d.advance(1)  # the sequenced clock starts
    d.deposit(A, usd(250))
    d.deposit(B, usd(50_000))
    d.deposit(C, usd(50_000))
    d.price(usd(2000))
    d.order(B, SELL, usd(2000), ONE)
    d.order(B, SELL, usd(2003), ONE)
    d.order(A, BUY, 0, ONE, MARKET)  # A long 1 at 2,000 (market order, taker)
    d.order(B, BUY, usd(1999), ONE)
    d.order(C, SELL, usd(1999), ONE // 2, LIMIT_IOC)  # C short 0.5 against B's bid
    d.order(C, BUY, usd(1995), 2 * ONE)
    d.price(usd(2000))  # mark = 2,000 + premium (mid 2,001 - index) = 2,001
    d.advance(3_600_000)  # funding: per contract trunc(1 USDC / 8) = 0.125, longs pay shorts
    d.cancel_all(B)
    d.cancel_all(C)
    d.order(C, BUY, usd(1850), ONE)  # the only bid when the price falls
    d.price(usd(1800))  # A: equity below maintenance → sold to C's bid at 1,850, fee to the fund
    d.apply(FundInsurance(d.rid(), USDC, 1))
    d.withdraw(B, usd(1_000))
    # C withdraws through the L1 inbox (a forced request) in a block that also carries a deposit of A's before it
    d.force(pr.WithdrawIntent(C, MAIN, USDC, usd(500), 0, 0), deposits=(Deposit(d.seq + 1, A, MAIN, USDC, usd(10)),))
    # a batch: rest a bid, modify it within the batch, take the resting ask, and a cancel of nothing (rejected alone)
    batch_id = d.rid()
    d.apply(Batch(batch_id, B, MAIN, (
        BatchAction(0, market_params().market, BUY, LIMIT, usd(1700), ONE, False, ZERO_ID),
        BatchAction(2, market_params().market, 0, 0, usd(1710), ONE, False, pr.batch_action_id(batch_id, 0)),
        BatchAction(1, market_params().market, 0, 0, 0, 0, False, b"\x99" * 32),
    )))
    # all or nothing: a quote replacement that applies, then one whose last action would cross (none applies)
    quote_id = d.rid()
    d.apply(Batch(quote_id, B, MAIN, (
        BatchAction(0, market_params().market, SELL, 2, usd(2300), ONE // 10, False, ZERO_ID),
        BatchAction(0, market_params().market, SELL, 2, usd(2310), ONE // 10, False, ZERO_ID),
    ), True))
    d.apply(Batch(d.rid(), B, MAIN, (
        BatchAction(1, market_params().market, 0, 0, 0, 0, False, pr.batch_action_id(quote_id, 0)),
        BatchAction(0, market_params().market, BUY, 2, usd(2400), ONE // 10, False, ZERO_ID),
    ), True))
    d.apply(ApproveAgent(d.rid(), C, MAIN, trader(7), 1, d.time + 86_400_000))  # an agent for C, in the state
    d.apply(ApproveAgent(d.rid(), C, ZERO_ID, trader(8), 1, d.time + 60_000))
    d.apply(RevokeAgent(d.rid(), C, ZERO_ID, trader(8)))
    # triggers: C's stop-market buy fires on the next price update and takes B's offer; B's waits
    d.order(B, SELL, usd(1860), ONE // 2)
    d.apply(PlaceTrigger(d.rid(), C, MAIN, market_params().market, BUY, 0, usd(1850), MARKET, 0, ONE // 2, False, False,
                         ZERO_ID, ZERO_ID))
    d.apply(PlaceTrigger(d.rid(), B, MAIN, market_params().market, SELL, 1, usd(1500), LIMIT, usd(1490), ONE, False,
                         False, ZERO_ID, b"stop-b".ljust(32, b"\x00")))
    d.price(usd(1900))  # mark 1,881 (the premium capped at 1 %): C's stop fires
    # a TWAP: B sells 0.4 in two IOC slices at 1,870 or better, 1 s apart, into C's bids
    d.order(C, BUY, usd(1880), ONE // 5)
    d.apply(PlaceTwap(d.rid(), B, MAIN, market_params().market, SELL, 2 * ONE // 5, 2_000, 1_000, usd(1870), False))
    d.order(C, BUY, usd(1875), ONE // 5)
    d.advance(1_000)
    d.epoch()
    return d.log


def _plain(value):
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, msgspec.Struct):
        out = {"type": type(value).__name__}
        out.update({f: _plain(getattr(value, f)) for f in value.__struct_fields__})
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run(commands) -> tuple[list, bytes]:
    engine = Engine(genesis())
    updates = [_plain(engine.apply(c)) for c in commands]
    return updates, engine.state_root()


def test_golden_scenario():
    if os.environ.get("DDX_ENGINE_REGENERATE_GOLDEN"):
        commands = build_scenario()
        updates, root = run(commands)
        doc = {
            "about": "tests/engine/test_golden.py: commands (engine encoding, hex), updates per command, final root",
            "commands": ["0x" + encode_command(c).hex() for c in commands],
            "updates": updates,
            "root": "0x" + root.hex(),
        }
        GOLDEN.write_text(json.dumps(doc, indent=1) + "\n")
    doc = json.loads(GOLDEN.read_text())
    commands = [decode_command(bytes.fromhex(h[2:])) for h in doc["commands"]]
    assert [encode_command(c).hex() for c in commands] == [h[2:] for h in doc["commands"]]
    updates, root = run(commands)
    for i, (got, want) in enumerate(zip(updates, doc["updates"])):
        assert got == want, f"command {i}: updates differ"
    assert len(updates) == len(doc["updates"])
    assert "0x" + root.hex() == doc["root"]


def test_golden_scenario_covers_what_it_claims():
    doc = json.loads(GOLDEN.read_text())
    kinds = {u["type"] for per_command in doc["updates"] for u in per_command}
    assert {"DepositCredited", "Fill", "Liquidation", "FundingPaid", "WithdrawalUpdate", "EpochFrozen", "AgentUpdate",
            "TriggerUpdate", "TwapUpdate"} <= kinds
    fired = [u for per_command in doc["updates"] for u in per_command if u["type"] == "TriggerUpdate" and u["status"] == 1]
    assert fired, "a trigger fires in the scenario"
    firsts = [per_command[0] for per_command in doc["updates"]]
    refused = [u for u in firsts if u["type"] != "Accepted"]
    assert [(u["command"], u["reason"]) for u in refused] == [("Batch", 45)]  # only the atomic batch meant to fail
