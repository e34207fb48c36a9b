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


def test_a_position_reopened_after_going_flat_has_the_same_root_after_a_snapshot():
    """Found by the whole-stack simulator (seed 113): a flat position (no tree item) used to keep its realized PnL in
    memory and carry it into the next position it opened, so a node that restored a snapshot taken while flat (and
    so started that position's PnL at 0) reached another root than a node that had replayed the log."""
    from engine_helpers import ETHP, Driver, trader, usd

    from ddx_offchain.engine.commands import BUY, MAIN_STRATEGY, SELL
    from ddx_offchain.engine.updates import PositionUpdate

    a, b = trader(1), trader(2)
    d = Driver()
    for who in (a, b):
        d.deposit(who, usd(10_000))
    d.price(usd(2_000))
    d.order(a, BUY, usd(2_000), 1_000_000)
    d.order(b, SELL, usd(2_000), 1_000_000)  # a long 1 at 2000
    d.order(a, SELL, usd(2_100), 1_000_000)
    d.order(b, BUY, usd(2_100), 1_000_000)  # a flat, realized +100
    d.order(a, BUY, usd(1_000), 100_000)  # an open order keeps a's flat position object alive
    assert d.engine.accounts[a + MAIN_STRATEGY + next(iter(d.engine.ledgers))].positions[ETHP].size == 0
    restored = Driver(Engine.restore(d.engine.snapshot()))
    for driver in (d, restored):
        driver.ids = iter(range(1_000, 2_000))
        driver.order(a, BUY, usd(2_000), 500_000)
        updates = driver.order(b, SELL, usd(2_000), 500_000)  # a opens a new long
        assert [u.realized_pnl for u in updates if isinstance(u, PositionUpdate) and u.trader == a] == [0]
    assert restored.engine.state_root() == d.engine.state_root()


def test_a_capture_is_the_snapshot_of_its_moment_and_encodes_like_one_msgpack_document():
    """capture() takes the state now; encoding later (on the runtime's snapshot thread) gives exactly the bytes
    snapshot() gave at capture time, and the bucketed encoding equals msgspec's encoding of the whole document."""
    import msgspec
    from engine_helpers import Driver, trader, usd

    from ddx_offchain.engine.snapshot import _HEADER

    d = Driver()
    for i in range(1, 60):
        d.deposit(trader(i), usd(10 + i))
    d.epoch()
    d.deposit(trader(99), usd(3))
    now = d.engine.snapshot()
    encode = d.engine.capture()
    d.deposit(trader(98), usd(4))  # after the capture: not in it
    assert encode() == now != d.engine.snapshot()
    engine = Engine.restore(now)
    engine.flush()
    whole = msgspec.msgpack.encode([
        engine.tree.root(), [[k, v] for k, v in engine.tree.items()],
        [[e, sorted(engine._undo[e].items())] for e in engine.retained_epochs],
    ])
    assert now[_HEADER:-32] == whole


def test_the_benchmark_batch_mix_does_the_same_work_as_its_actions_one_by_one():
    """benchmarks/engine.py's batch mixes (smoke size): run_batch_mix raises unless the batched engine's updates,
    less each Batch's own Accepted, equal the one-by-one engine's (ordinals aside) and their states end equal (but
    for the items holding the ordinal); the figures it reports are there and positive, never checked for speed."""
    b = _bench()
    for size in (10, 50):
        mix = b.run_batch_mix(units=4_000, size=size, seed=3)
        assert mix["actions_per_batch"] == size
        assert mix["batches"] * size == mix["actions"] <= mix["units"]
        for key in ("requests_per_s", "actions_per_s", "cpu_us_per_action", "apply_us_per_action",
                    "tree_us_per_action", "singles_requests_per_s", "singles_cpu_us_per_request", "ratio_to_singles",
                    "actions_accepted", "actions_rejected", "fills", "roots"):
            assert mix[key] > 0, key
        assert mix["roots"] == mix["units"] // b.ROOT_EVERY
    mix = b.trigger_mix(4_000, 3)
    assert mix["triggers_placed"] > 0 and mix["triggers_fired"] > 0 and mix["requests_per_s"] > 0
