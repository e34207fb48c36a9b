"""Engine throughput: replay a seeded, realistic request mix with a state root every 1,000 requests.

    python benchmarks/engine.py --json [--requests N] [--seed S] [--profile-sample N] [--batch-units N]
                                       [--batch-sizes 10,50]

Mix (per request): ~50% limit GTC around the mid, ~27% cancels (mostly of the trader's oldest order),
~6% IOC/market takers, ~3% post-only, ~3% modifies, ~1% cancel-all, ~0.4% index price moves (random walk with
rare jumps, which liquidate the few over-levered traders), ~0.2% withdrawals, ~0.1% deposit blocks, a time advance
every 1,000 requests (one minute of funding clock), an epoch every 100,000.
Commands are generated in chunks of 5,000 outside the timed region (between chunks the simulated clients forget
orders the engine reports gone, as real clients would from their order updates); only `engine.apply` and
`engine.state_root()` are timed, and the clock is read once per run of same-category requests (not per request),
so the harness's own bookkeeping stays out of the CPU figure.
The split reports where time goes: orders (place/modify/cancel incl. matching and margin checks), risk (price
updates with liquidation sweeps, funding), other commands, and tree (dirty-item encoding + root). A cProfile pass
over a sample estimates how much of the order time is margin arithmetic.

Batch mixes (`batch_mixes`, one per `--batch-sizes` entry): the same mix sent as Batch commands of 10 and 50
actions (BatchWorkload), measured against the same actions applied one by one on a second engine in the same run
(alternate chunks), so the engine's per-command dispatch cost shows as the difference: requests/s, actions/s, CPU
per action (apply and tree), the one-by-one peer's figures and the ratio. The run also checks that both engines did
the same work. `trigger_mix` runs a trigger-heavy mix (TriggerWorkload: stops and take-profits, frequent price updates): requests/s,
CPU per request, the price updates' share of the time, triggers placed, fired and waiting.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import resource
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddx_offchain.engine import ENGINE_BUILD, Engine, GenesisConfig  # noqa: E402
from ddx_offchain.engine.commands import (  # noqa: E402
    BUY,
    LIMIT,
    LIMIT_IOC,
    MAIN_STRATEGY,
    MARKET,
    POST_ONLY,
    SELL,
    AdvanceEpoch,
    AdvanceTime,
    Batch,
    BatchAction,
    CancelAll,
    CancelOrder,
    ChainBlock,
    Deposit,
    IndexPrice,
    IndexPrices,
    MarketParams,
    ModifyOrder,
    PlaceOrder,
    PlaceTrigger,
    WithdrawIntent,
    name32,
)
from ddx_offchain.engine.updates import (  # noqa: E402
    TRIGGER_FIRED,
    Accepted,
    EpochFrozen,
    Fill,
    Liquidation,
    TriggerUpdate,
)
from ddx_offchain.protocol.requests import batch_action_id  # noqa: E402
from ddx_offchain.tree import kernels  # noqa: E402

USDC = bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
ZERO32 = b"\x00" * 32
ROOT_EVERY = 1_000
EPOCH_EVERY = 100_000
CHUNK = 5_000


def market(name: str, tick: int) -> MarketParams:
    return MarketParams(
        market=name32(name), token=USDC, tick=tick, lot=1_000, size_decimals=6, initial_margin_bps=1_000,
        maintenance_margin_bps=500, maker_fee_bps=2, taker_fee_bps=5, liquidation_fee_bps=50,
        market_order_band_bps=500, premium_cap_bps=100, funding_cap_bps=75, funding_dampener=8,
        funding_interval_ms=3_600_000, max_order_notional=10**13,
    )


MARKETS = [(name32("ETHP"), 10_000, 2_000_000_000), (name32("BTCP"), 1_000_000, 60_000_000_000)]


class Workload:
    """Deterministic generator of the request mix; keeps only what a client would know (its own order ids)."""

    def __init__(self, seed: int, traders: int = 400) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.seq = 0
        self.block = 0
        self.time = 0
        self.epoch = 0
        self.traders = [(0x10000 + i).to_bytes(20, "big") for i in range(traders)]
        self.degens = set(self.traders[: traders // 20])  # 5% run thin margin and get liquidated on jumps
        self.open: dict[bytes, deque] = {t: deque() for t in self.traders}
        self.index = {m: p for m, _, p in MARKETS}
        self.ticks = {m: t for m, t, _ in MARKETS}

    def rid(self) -> bytes:
        self.n += 1
        return self.n.to_bytes(32, "big")

    def genesis_commands(self) -> list:
        out = []
        deposits = []
        for t in self.traders:
            self.seq += 1
            amount = 3_000 * 10**6 if t in self.degens else 5_000_000 * 10**6
            deposits.append(Deposit(self.seq, t, MAIN_STRATEGY, USDC, amount))
        self.block += 1
        out.append(ChainBlock(self.rid(), self.block, self.block.to_bytes(32, "big"), tuple(deposits)))
        out.append(IndexPrices(self.rid(), tuple(IndexPrice(m, p) for m, p in self.index.items())))
        return out

    def learn(self, open_orders) -> None:
        """Between chunks each client drops the ids its order updates reported filled or cancelled."""
        for q in self.open.values():
            if q:
                kept = [x for x in q if x[0] in open_orders]
                q.clear()
                q.extend(kept)

    def chunk(self, count: int) -> list:
        rng = self.rng
        out = []
        traders = self.traders
        for _ in range(count):
            i = self.n + 1
            if i % EPOCH_EVERY == 0:
                self.epoch += 1
                out.append(AdvanceEpoch(self.rid(), self.epoch))
                continue
            if i % ROOT_EVERY == 500:
                self.time += 60_000
                out.append(AdvanceTime(self.rid(), self.time))
                continue
            r = rng.random()
            t = traders[rng.randrange(len(traders))]
            out.append(self.request(r, t, self.rid))
        return out

    def request(self, r: float, t: bytes, new_id) -> object:
        """One request of the mix for trader `t`, chosen by `r` (uniform in [0, 1)). Place, cancel and modify
        commands take their request id from `new_id()` (the batch mix passes action ids there); the others (cancel
        all, prices, withdrawals, deposits) from `self.rid()`."""
        rng = self.rng
        m, tick, _ = MARKETS[0] if rng.random() < 0.7 else MARKETS[1]
        idx = self.index[m]
        mid = idx // tick * tick
        if r < 0.50:  # resting limit order around the mid
            side = BUY if rng.random() < 0.5 else SELL
            off = rng.randint(1, 25) * tick
            price = mid - off if side == BUY else mid + off
            size = rng.randint(1, 200) * 1_000 * (1 if m == MARKETS[0][0] else 1)
            if t in self.degens:
                size *= 20
            rid = new_id()
            self.open[t].append((rid, m))
            return PlaceOrder(rid, t, MAIN_STRATEGY, m, side, LIMIT, price, size, False)
        if r < 0.77:  # cancel, usually the oldest (book hygiene), sometimes the newest
            q = self.open[t]
            if not q:
                return CancelAll(self.rid(), t, MAIN_STRATEGY, ZERO32)
            rid, om = q.popleft() if rng.random() < 0.8 else q.pop()
            return CancelOrder(new_id(), t, MAIN_STRATEGY, om, rid)
        if r < 0.83:  # takers: IOC through a few levels, or market
            side = BUY if rng.random() < 0.5 else SELL
            size = rng.randint(1, 300) * 1_000
            if t in self.degens:
                size *= 40
            if rng.random() < 0.5:
                price = mid + 10 * tick if side == BUY else mid - 10 * tick
                return PlaceOrder(new_id(), t, MAIN_STRATEGY, m, side, LIMIT_IOC, price, size, False)
            return PlaceOrder(new_id(), t, MAIN_STRATEGY, m, side, MARKET, 0, size, False)
        if r < 0.86:  # post-only
            side = BUY if rng.random() < 0.5 else SELL
            off = rng.randint(0, 10) * tick
            price = mid - off if side == BUY else mid + off
            rid = new_id()
            self.open[t].append((rid, m))
            return PlaceOrder(rid, t, MAIN_STRATEGY, m, side, POST_ONLY, max(price, tick), rng.randint(1, 100) * 1_000,
                              False)
        if r < 0.89:  # modify the newest order
            q = self.open[t]
            if not q:
                return CancelAll(self.rid(), t, MAIN_STRATEGY, ZERO32)
            old, om = q.pop()
            omid = self.index[om] // self.ticks[om] * self.ticks[om]
            off = rng.randint(1, 25) * self.ticks[om]
            price = omid - off if rng.random() < 0.5 else omid + off
            rid = new_id()
            q.append((rid, om))
            return ModifyOrder(rid, t, MAIN_STRATEGY, om, old, price, rng.randint(1, 200) * 1_000)
        if r < 0.90:
            self.open[t].clear()
            return CancelAll(self.rid(), t, MAIN_STRATEGY, ZERO32)
        if r < 0.904:  # index price: random walk, occasional 12% jumps
            jump = rng.random() < 0.05
            move = rng.choice((-1, 1)) * (idx * 12 // 100 if jump else rng.randint(0, 20) * tick)
            self.index[m] = max(tick * 100, idx + move)
            return IndexPrices(self.rid(), (IndexPrice(m, self.index[m]),))
        if r < 0.906:
            return WithdrawIntent(self.rid(), t, MAIN_STRATEGY, USDC, rng.randint(1, 100) * 10**6)
        if r < 0.907:
            self.seq += 1
            self.block += 1
            amount = rng.randint(1_000, 50_000) * 10**6
            return ChainBlock(self.rid(), self.block, self.block.to_bytes(32, "big"),
                              (Deposit(self.seq, t, MAIN_STRATEGY, USDC, amount),))
        # more resting flow close to the mid (keeps the book two-sided)
        side = BUY if rng.random() < 0.5 else SELL
        off = rng.randint(1, 5) * tick
        price = mid - off if side == BUY else mid + off
        rid = new_id()
        self.open[t].append((rid, m))
        return PlaceOrder(rid, t, MAIN_STRATEGY, m, side, LIMIT, price, rng.randint(1, 50) * 1_000, False)


class BatchWorkload(Workload):
    """The same mix sent as Batch commands: each batch is one random trader's next `size` place/cancel/modify
    requests of the mix (drawn as above, with that trader fixed), under action ids; what a batch cannot carry (cancel
    all, withdrawals, deposits, price moves: ≈ 1.7% of draws) is sent alone right after the batch, and time advances
    and epochs come at the same cadence as in the single mix, counted in units of work (one unit = one action or one
    single command)."""

    def __init__(self, seed: int, size: int, traders: int = 400) -> None:
        super().__init__(seed, traders)
        self.size = size
        self.units = 0
        self.next_time = ROOT_EVERY // 2
        self.next_epoch = EPOCH_EVERY

    def steps(self, units: int) -> list:
        """About `units` units of work as [(batched commands, flat commands)]: the batched form is a Batch then
        the singles drawn with it; the flat form is the same actions as single commands under their action ids (a
        batch and its actions sent one by one reach the same state, docs/engine.md §3.1), then the same singles."""
        rng = self.rng
        traders = self.traders
        out = []
        stop = self.units + units
        while self.units < stop:
            if self.units >= self.next_epoch:
                self.next_epoch += EPOCH_EVERY
                self.epoch += 1
                c = AdvanceEpoch(self.rid(), self.epoch)
                out.append(((c,), (c,)))
                self.units += 1
                continue
            if self.units >= self.next_time:
                self.next_time += ROOT_EVERY
                self.time += 60_000
                c = AdvanceTime(self.rid(), self.time)
                out.append(((c,), (c,)))
                self.units += 1
                continue
            t = traders[rng.randrange(len(traders))]
            batch_id = self.rid()
            index = [0]

            def action_id() -> bytes:
                i = index[0]
                index[0] = i + 1
                return batch_action_id(batch_id, i)

            flat = []
            singles = []
            while len(flat) < self.size:
                c = self.request(rng.random(), t, action_id)
                (flat if type(c) in AS_ACTION else singles).append(c)
            batch = Batch(batch_id, t, MAIN_STRATEGY, tuple(AS_ACTION[type(c)](c) for c in flat))
            out.append(((batch, *singles), (*flat, *singles)))
            self.units += len(flat) + len(singles)
        return out


AS_ACTION = {
    PlaceOrder: lambda c: BatchAction(0, c.market, c.side, c.order_type, c.price, c.size, c.reduce_only, ZERO32),
    CancelOrder: lambda c: BatchAction(1, c.market, 0, 0, 0, 0, False, c.order_hash),
    ModifyOrder: lambda c: BatchAction(2, c.market, 0, 0, c.price, c.size, False, c.order_hash),
}


CATEGORY = {
    PlaceOrder: "orders", CancelOrder: "orders", ModifyOrder: "orders", CancelAll: "orders",
    IndexPrices: "risk", AdvanceTime: "risk",
}


def segments(batch: list, done: int) -> list:
    """Cut a chunk into runs of one category, also cut after every request that is followed by a state root:
    [(commands, category, root_after)]. Built outside the timed region so that the timed loop reads the clock once
    per run instead of twice per request."""
    out = []
    run_start = 0
    for i, c in enumerate(batch):
        cat = CATEGORY.get(type(c), "other")
        root_after = (done + i + 1) % ROOT_EVERY == 0
        last = i + 1 == len(batch)
        if last or root_after or CATEGORY.get(type(batch[i + 1]), "other") != cat:
            out.append((batch[run_start : i + 1], cat, root_after))
            run_start = i + 1
    return out


def run(requests: int, seed: int) -> dict:
    work = Workload(seed)
    engine = Engine(GenesisConfig(tokens=(USDC,), markets=tuple(market(n.rstrip(b"\0").decode(), t)
                                                               for n, t, _ in MARKETS)))
    for c in work.genesis_commands():
        engine.apply(c)
    engine.state_root()
    split = {"orders": 0.0, "risk": 0.0, "other": 0.0, "tree": 0.0}
    counts = {"accepted": 0, "rejected": 0, "fills": 0, "liquidations": 0, "updates": 0}
    done = 0
    perf = time.perf_counter
    apply = engine.apply
    state_root = engine.state_root
    cpu_total = 0.0
    while done < requests:
        work.learn(engine.orders)
        batch = work.chunk(min(CHUNK, requests - done))
        runs = segments(batch, done)
        results = []
        keep = results.append
        t_cat = {"orders": 0.0, "risk": 0.0, "other": 0.0}
        t_tree = 0.0
        cpu0 = time.process_time()
        for commands, cat, root_after in runs:
            t0 = perf()
            for c in commands:
                keep(apply(c))
            t1 = perf()
            t_cat[cat] += t1 - t0
            if root_after:
                state_root()
                t_tree += perf() - t1
        cpu_total += time.process_time() - cpu0
        done += len(batch)
        split["tree"] += t_tree
        for k, v in t_cat.items():
            split[k] += v
        for c, ups in zip(batch, results):  # outside the timed region
            counts["updates"] += len(ups)
            if type(c) is IndexPrices:
                counts["liquidations"] += sum(1 for u in ups if type(u) is Liquidation)
            counts["fills"] += sum(1 for u in ups if type(u) is Fill)
            if type(ups[0]) is Accepted:
                counts["accepted"] += 1
            else:
                counts["rejected"] += 1
    total = sum(split.values())
    return {
        "engine": engine,
        "total_s": total,
        "cpu_s": cpu_total,
        "split": split,
        "counts": counts,
    }


def fresh_engine(genesis_commands: list) -> Engine:
    engine = Engine(GenesisConfig(tokens=(USDC,), markets=tuple(market(n.rstrip(b"\0").decode(), t)
                                                               for n, t, _ in MARKETS)))
    for c in genesis_commands:
        engine.apply(c)
    engine.state_root()
    return engine


def timed_apply(engine: Engine, segs: list) -> tuple[list, list, float, float, float]:
    """Apply [(commands, root_after)], taking a root where asked: (updates per command, roots, CPU s, wall s,
    wall s in roots). The clock is read per chunk and around roots only."""
    apply = engine.apply
    state_root = engine.state_root
    perf = time.perf_counter
    results: list = []
    keep = results.append
    roots = []
    t_tree = 0.0
    cpu0 = time.process_time()
    w0 = perf()
    for commands, root_after in segs:
        for c in commands:
            keep(apply(c))
        if root_after:
            t1 = perf()
            roots.append(state_root())
            t_tree += perf() - t1
    wall = perf() - w0
    return results, roots, time.process_time() - cpu0, wall, t_tree


SYSTEM_KEY = Engine(GenesisConfig(tokens=(USDC,))).system_item()[0]


def epoch_keys(engine: Engine) -> set:
    return {record.item()[0] for record in engine.epochs.values()}


def _content(u) -> tuple:
    """An update without its ordinal (and an EpochFrozen without its root, which covers the ordinal)."""
    fields = u.__struct_fields__[1:]
    if type(u) is EpochFrozen:
        fields = tuple(f for f in fields if f != "root")
    return (type(u), *(getattr(u, f) for f in fields))


def same_work(batched_commands: list, batched: list, flat: list) -> bool:
    """The batched engine's updates, less each Batch's own Accepted, equal the one-by-one engine's, ordinals aside."""
    left = []
    for c, ups in zip(batched_commands, batched):
        left.extend(map(_content, ups[1:] if type(c) is Batch and type(ups[0]) is Accepted else ups))
    right = [_content(u) for ups in flat for u in ups]
    return left == right


def run_batch_mix(units: int, size: int, seed: int) -> dict:
    """The mix as Batch commands of `size` actions (BatchWorkload), against its peer measured in the same run: the
    same actions applied one by one as single commands under their action ids, on a second engine. The two engines
    take alternate chunks (which one goes first alternates too), so both see the same machine, and both take a root
    after the same unit of work, every ROOT_EVERY units. The two must do the same work: their updates are checked
    equal (outside the timed region) but for the batch's own Accepted and the ordinals it shifts, and at the end
    their items are equal but for the two that hold an ordinal (the system item and the epoch records; so the roots
    differ, and an epoch's frozen root with them). It raises otherwise."""
    work = BatchWorkload(seed, size)
    genesis = work.genesis_commands()
    engines = {"batched": fresh_engine(genesis), "flat": fresh_engine(genesis)}
    cpu = {"batched": 0.0, "flat": 0.0}
    wall = {"batched": 0.0, "flat": 0.0}
    tree = {"batched": 0.0, "flat": 0.0}
    commands = {"batched": 0, "flat": 0}
    counts = {"batches": 0, "actions": 0, "actions_accepted": 0, "actions_rejected": 0, "fills": 0, "roots": 0}
    done = 0
    chunk_no = 0
    while done < units:
        work.learn(engines["batched"].orders)
        steps = work.steps(min(CHUNK, units - done))
        segs: dict[str, list] = {"batched": [], "flat": []}
        run_b: list = []
        run_f: list = []
        for batched, flat in steps:
            run_b.extend(batched)
            run_f.extend(flat)
            before = done
            done += len(flat)
            if done // ROOT_EVERY != before // ROOT_EVERY:
                segs["batched"].append((run_b, True))
                segs["flat"].append((run_f, True))
                run_b, run_f = [], []
            if type(batched[0]) is Batch:
                counts["batches"] += 1
                counts["actions"] += len(batched[0].actions)
        segs["batched"].append((run_b, False))
        segs["flat"].append((run_f, False))
        order = ("batched", "flat") if chunk_no % 2 == 0 else ("flat", "batched")
        chunk_no += 1
        outcome = {}
        for form in order:
            results, roots, c, w, t = timed_apply(engines[form], segs[form])
            cpu[form] += c
            wall[form] += w
            tree[form] += t
            commands[form] += sum(len(x) for x, _ in segs[form])
            outcome[form] = (results, roots)
        counts["roots"] += len(outcome["flat"][1])
        batched_commands = [c for x, _ in segs["batched"] for c in x]
        flat_commands = [c for x, _ in segs["flat"] for c in x]
        if same_work(batched_commands, outcome["batched"][0], outcome["flat"][0]) is False:
            raise AssertionError(f"a batch of {size} and its actions one by one gave different updates")
        for c, ups in zip(flat_commands, outcome["flat"][0]):  # outside the timed region
            counts["fills"] += sum(1 for u in ups if type(u) is Fill)
            if type(c) in AS_ACTION:
                counts["actions_accepted" if type(ups[0]) is Accepted else "actions_rejected"] += 1
    items = {f: {k: v for k, v in engines[f].all_items() if k != SYSTEM_KEY and k not in epoch_keys(engines[f])}
             for f in engines}
    if items["batched"] != items["flat"]:
        raise AssertionError(f"a batch of {size} and its actions one by one left different states")
    # per unit of work, CPU time; the tree's part is its wall-clock share scaled to CPU as in the single mix
    per = {f: cpu[f] * 1e6 / done for f in cpu}
    tree_per = {f: per[f] * tree[f] / wall[f] if wall[f] else 0.0 for f in cpu}
    return {
        "actions_per_batch": size,
        "units": done,
        "actions": counts["actions"],
        "batches": counts["batches"],
        "requests": commands["batched"],
        "requests_per_s": round(commands["batched"] / cpu["batched"]),
        "actions_per_s": round(done / cpu["batched"]),
        "actions_per_s_wall": round(done / wall["batched"]),
        "cpu_us_per_action": round(per["batched"], 2),
        "apply_us_per_action": round(per["batched"] - tree_per["batched"], 2),
        "tree_us_per_action": round(tree_per["batched"], 2),
        "singles_requests_per_s": round(done / cpu["flat"]),
        "singles_cpu_us_per_request": round(per["flat"], 2),
        "singles_apply_us_per_request": round(per["flat"] - tree_per["flat"], 2),
        "ratio_to_singles": round(cpu["flat"] / cpu["batched"], 3),
        "cpu_s": round(cpu["batched"], 3),
        "singles_cpu_s": round(cpu["flat"], 3),
        "actions_accepted": counts["actions_accepted"],
        "actions_rejected": counts["actions_rejected"],
        "fills": counts["fills"],
        "roots": counts["roots"],
    }


class TriggerWorkload(Workload):
    """The single mix with a trigger-heavy twist: a fifth of what would be resting limit orders are stops and
    take-profits (PlaceTrigger: market or stop-limit, a few ticks to 2 % from the index, either direction), and price
    updates are ten times as frequent, so triggers keep firing."""

    def request(self, r: float, t: bytes, new_id) -> object:
        rng = self.rng
        if r < 0.10:
            m, tick, _ = MARKETS[0] if rng.random() < 0.7 else MARKETS[1]
            idx = self.index[m]
            direction = rng.randrange(2)  # 0: fires when the mark rises to the price, 1: when it falls to it
            off = rng.randint(1, max(2, idx * 2 // 100 // tick)) * tick
            trigger = idx // tick * tick + (off if direction == 0 else -off)
            side = BUY if rng.random() < 0.5 else SELL
            if rng.random() < 0.5:
                order_type, price = MARKET, 0
            else:
                order_type, price = LIMIT_IOC, trigger + (10 * tick if side == BUY else -10 * tick)
            return PlaceTrigger(new_id(), t, MAIN_STRATEGY, m, side, direction, max(trigger, tick), order_type,
                                max(price, 0 if order_type == MARKET else tick), rng.randint(1, 100) * 1_000, False,
                                False, ZERO32, ZERO32)
        if r < 0.14:  # price updates ten times as often as in the single mix
            return super().request(0.9005, t, new_id)
        return super().request(r, t, new_id)


def trigger_mix(requests: int, seed: int) -> dict:
    """The trigger-heavy mix (TriggerWorkload), applied with a root every ROOT_EVERY commands: requests/s, CPU per
    request, how much of it the price updates (where triggers fire) take, and how many triggers were placed, fired
    and waiting at the end."""
    work = TriggerWorkload(seed)
    engine = Engine(GenesisConfig(tokens=(USDC,), markets=tuple(market(n.rstrip(b"\0").decode(), t)
                                                               for n, t, _ in MARKETS)))
    for c in work.genesis_commands():
        engine.apply(c)
    engine.state_root()
    placed = fired = 0
    price_s = 0.0
    done = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while done < requests:
        work.learn(engine.orders)
        commands = work.chunk(min(CHUNK, requests - done))
        for k, c in enumerate(commands, start=done + 1):
            if type(c) is IndexPrices:
                t0 = time.perf_counter()
                ups = engine.apply(c)
                price_s += time.perf_counter() - t0
                fired += sum(1 for u in ups if type(u) is TriggerUpdate and u.status == TRIGGER_FIRED)
            else:
                ups = engine.apply(c)
                if type(c) is PlaceTrigger and type(ups[0]) is Accepted:
                    placed += 1
            if k % ROOT_EVERY == 0:
                engine.state_root()
        done += len(commands)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "requests": requests,
        "requests_per_s": round(requests / wall),
        "cpu_us_per_request": round(cpu * 1e6 / requests, 1),
        "price_update_share": round(price_s / wall, 3),
        "triggers_placed": placed,
        "triggers_fired": fired,
        "triggers_waiting": len(engine.triggers),
    }


def margin_share(seed: int, sample: int) -> float:
    """Fraction of order-handling time spent in margin arithmetic (ddx_offchain/engine/margin.py and the
    per-fill maker checks), from a cProfile pass over a sample."""
    work = Workload(seed)
    engine = Engine(GenesisConfig(tokens=(USDC,), markets=tuple(market(n.rstrip(b"\0").decode(), t)
                                                               for n, t, _ in MARKETS)))
    for c in work.genesis_commands():
        engine.apply(c)
    cmds = work.chunk(sample)
    prof = cProfile.Profile()
    prof.enable()
    for c in cmds:
        engine.apply(c)
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())  # tottime
    margin = sum(v[2] for (f, _, _), v in stats.items() if f.endswith("engine/margin.py"))
    return margin / total if total else 0.0


LOAD_AT_START = os.getloadavg()[0]


def machine_load() -> dict:
    """How busy the shared machine was (1-minute load average at the start and the end, CPU pressure at the end)."""
    out = {"load_average_1m_start": round(LOAD_AT_START, 2), "load_average_1m": round(os.getloadavg()[0], 2),
           "cores": os.cpu_count()}
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        out["cpu_pressure_some_avg10"] = float(line.split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile-sample", type=int, default=50_000)
    ap.add_argument("--batch-units", type=int, default=200_000,
                    help="units of work (actions + single commands) per batch mix; 0 skips the batch mixes")
    ap.add_argument("--batch-sizes", default="10,50", help="actions per Batch command, one mix each")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.requests, args.seed)
    engine = result["engine"]
    split = result["split"]
    # cProfile cannot see inside the compiled engine's functions, so the margin share is measured on the pure build
    # only (compiled: 0, and the margin arithmetic is counted in matching_s)
    profiled = args.profile_sample and ENGINE_BUILD != "compiled"
    share = margin_share(args.seed, min(args.profile_sample, args.requests)) if profiled else 0.0
    # The machine is shared: wall-clock per-command timings are scaled to this process's CPU time (measured per
    # chunk with process_time), which is what "one core" means here. Both rates are reported.
    scale = result["cpu_s"] / result["total_s"] if result["total_s"] else 1.0
    split = {k: v * scale for k, v in split.items()}
    orders = split["orders"]
    out = {
        "requests": args.requests,
        "requests_per_s": round(args.requests / result["cpu_s"]),
        "requests_per_s_wall": round(args.requests / result["total_s"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "split": {
            "matching_s": round(orders * (1 - share), 3),
            "margin_s": round(orders * share, 3),
            "risk_s": round(split["risk"], 3),
            "other_s": round(split["other"], 3),
            "tree_s": round(split["tree"], 3),
            "total_cpu_s": round(result["cpu_s"], 3),
            "total_wall_s": round(result["total_s"], 3),
            "margin_share_of_orders": round(share, 3),
        },
        "roots": args.requests // ROOT_EVERY,
        "accepted": result["counts"]["accepted"],
        "rejected": result["counts"]["rejected"],
        "updates": result["counts"]["updates"],
        "liquidations": result["counts"]["liquidations"],
        "fills": result["counts"]["fills"],
        "open_orders_end": len(engine.orders),
        "tree_items_end": len(engine.tree),
        "target_requests_per_s": 100_000,
        # which code ran: the compiled engine (mypyc) or its pure-Python reference (DDX_PURE_PYTHON=1, not built,
        # or stale), and the tree's kernels (benchmarks/tree.py reports the same)
        "engine_build": ENGINE_BUILD,
        "tree_kernels": kernels.DEFAULT.name,
        "batch_mixes": [run_batch_mix(args.batch_units, int(k), args.seed) for k in args.batch_sizes.split(",")
                        if args.batch_units > 0],
        "trigger_mix": trigger_mix(max(10_000, args.requests // 5), args.seed),
        "machine": machine_load(),
    }
    if not args.json:
        for k, v in out.items():
            print(f"{k}: {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
