"""Replay at scale: the benchmark's realistic mix (20,000 requests, liquidations included) applied from genesis, and
from a snapshot taken half-way, gives the same updates and the same root; a rebuilt engine's items equal the tree's.
Also keeps benchmarks/engine.py from rotting."""

import importlib.util
from pathlib import Path

from ddx_offchain.engine import Engine, GenesisConfig
from ddx_offchain.engine.commands import AdvanceEpoch, AdvanceTime

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "engine.py"


def _bench():
    spec = importlib.util.spec_from_file_location("ddx_bench_engine", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replay_from_genesis_and_from_a_snapshot_agree():
    b = _bench()
    work = b.Workload(seed=3, traders=60)
    genesis = GenesisConfig(tokens=(b.USDC,), markets=tuple(b.market(n.rstrip(b"\0").decode(), t)
                                                            for n, t, _ in b.MARKETS))
    engine = Engine(genesis)
    log = []
    updates = []
    for c in work.genesis_commands():
        log.append(c)
        updates.append(engine.apply(c))
    half = None
    for i in range(4):
        work.learn(engine.orders)
        for c in work.chunk(5_000):
            log.append(c)
            updates.append(engine.apply(c))
        if i == 1:
            half = (len(log), engine.snapshot())
        if i == 2:  # a funding payment and an epoch boundary in the second half
            work.time += 2 * 3_600_000
            work.epoch += 1
            for c in (AdvanceTime(work.rid(), work.time), AdvanceEpoch(work.rid(), work.epoch)):
                log.append(c)
                updates.append(engine.apply(c))
    root = engine.state_root()
    assert engine.all_items() == list(engine.tree.items())

    replay = Engine(genesis)
    for c, ups in zip(log, updates):
        assert replay.apply(c) == ups
    assert replay.state_root() == root

    at, data = half
    restored = Engine.restore(data)
    for c, ups in zip(log[at:], updates[at:]):
        assert restored.apply(c) == ups
    assert restored.state_root() == root
    kinds = {type(u).__name__ for ups in updates for u in ups}
    assert {"Fill", "Liquidation", "FundingPaid", "EpochFrozen"} <= kinds
