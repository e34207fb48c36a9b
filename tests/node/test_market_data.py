"""Market data (node/market_data.py) against brute-force recomputations over seeded random runs of the real engine:
candles, 24 h statistics, trades and funding payments from the fills and funding updates themselves; the L2 book
rebuilt by a client from the deltas equal to the engine's own book at every sequence number; a restart from the
engine's state serving the same book; the checksum vector of docs/api.md."""

from __future__ import annotations

import random
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ddx_offchain.engine.commands import BUY, LIMIT, MARKET, SELL
from ddx_offchain.engine.updates import Fill, FundingPaid, OrderUpdate, TimeAdvanced
from ddx_offchain.node import views
from ddx_offchain.node.market_data import DAY_MS, INTERVALS, MAX_CANDLES, MAX_TRADES, MarketData
from ddx_offchain.protocol.book_checksum import book_checksum, checksum_string

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
from engine_helpers import ETHP, ONE, Driver, trader, usd  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TICK = 10_000


class Run:
    """A random sequence of engine commands, each command's updates fed to MarketData as one entry."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.d = Driver()
        self.md = MarketData(lambda m: self.d.engine.markets[m].one if m in self.d.engine.markets else None)
        self.fills: list[tuple[int, Fill]] = []  # (sequenced time, fill)
        self.funding: list[FundingPaid] = []
        self.payments = []
        self.deltas = []
        self.traders = [trader(i) for i in range(6)]
        self.open_orders: dict[bytes, list[bytes]] = defaultdict(list)
        self.feed(self.d.price(usd(2000)))
        self.feed(self.d.advance(1_000))
        for t in self.traders:
            self.feed(self.d.deposit(t, usd(1_000_000)))

    def feed(self, updates: list) -> list:
        for u in updates:
            if isinstance(u, Fill):
                self.fills.append((self.d.engine.time, u))
            elif isinstance(u, FundingPaid):
                self.funding.append(u)
            elif isinstance(u, OrderUpdate) and u.remaining and u.order_id not in self.open_orders[u.trader]:
                self.open_orders[u.trader].append(u.order_id)
        outcome = self.md.apply(updates)
        self.deltas.extend(outcome.deltas)
        self.payments.extend(outcome.payments)
        return updates

    def step(self) -> None:
        rng, d = self.rng, self.d
        who = rng.choice(self.traders)
        roll = rng.random()
        mark = d.engine.markets[ETHP].mark
        if roll < 0.55:
            side = rng.choice((BUY, SELL))
            price = (mark // TICK + rng.randint(-30, 30)) * TICK
            self.feed(d.order(who, side, price, rng.randint(1, 40) * 10_000))
        elif roll < 0.65:
            self.feed(d.order(who, rng.choice((BUY, SELL)), 0, rng.randint(1, 20) * 10_000, MARKET))
        elif roll < 0.75 and self.open_orders[who]:
            order_id = self.open_orders[who].pop(rng.randrange(len(self.open_orders[who])))
            self.feed(d.cancel(who, order_id))
        elif roll < 0.8 and self.open_orders[who]:
            order_id = rng.choice(self.open_orders[who])
            self.feed(d.modify(who, order_id, (mark // TICK + rng.randint(-20, 20)) * TICK, rng.randint(1, 30) * 10_000))
        elif roll < 0.88:
            self.feed(d.price(max(TICK, mark + rng.randint(-40, 40) * TICK)))
        else:
            # mostly seconds, sometimes hours: candles of every width and funding intervals are crossed
            self.feed(d.advance(rng.choice((1_000, 7_000, 61_000, 3_600_000, 5 * 3_600_000))))


def brute_candles(fills: list[tuple[int, Fill]], interval: int) -> list[tuple]:
    buckets: dict[int, list] = {}
    for t, f in fills:
        start = t - t % interval
        notional = f.price * f.size // ONE
        b = buckets.get(start)
        if b is None:
            buckets[start] = [start, f.price, f.price, f.price, f.price, f.size, notional, 1]
        else:
            b[2] = max(b[2], f.price)
            b[3] = min(b[3], f.price)
            b[4] = f.price
            b[5] += f.size
            b[6] += notional
            b[7] += 1
    return [tuple(b) for _, b in sorted(buckets.items())]


def brute_day(fills: list[tuple[int, Fill]], now: int) -> tuple:
    window = [(t, f) for t, f in fills if t - t % 60_000 > now - DAY_MS]
    last = fills[-1][1].price if fills else None
    if not window:
        return (None, None, None, last, 0, 0, 0)
    prices = [f.price for _, f in window]
    return (prices[0], max(prices), min(prices), last, sum(f.size for _, f in window),
            sum(f.price * f.size // ONE for _, f in window), len(window))


def levels(book_view) -> tuple[list, list]:
    return [(lv.price, lv.size) for lv in book_view.bids], [(lv.price, lv.size) for lv in book_view.asks]


class ClientBook:
    """What a client does with the feed: a snapshot, then deltas chained by prevSeq, checked by checksum."""

    def __init__(self, snapshot) -> None:
        self.seq = snapshot.seq
        self.bids = dict(snapshot.bids)
        self.asks = dict(snapshot.asks)
        assert book_checksum(*self.sorted()) == snapshot.checksum

    def sorted(self):
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())

    def apply(self, delta) -> None:
        assert delta.prev_seq == self.seq, "gap"
        for side, changes in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for price, size in changes:
                if size:
                    side[price] = size
                else:
                    assert side.pop(price, None) is not None, "removed a level the client did not have"
        self.seq = delta.seq
        assert book_checksum(*self.sorted()) == delta.checksum


@pytest.mark.parametrize("seed", range(6))
def test_market_data_equals_brute_force_over_a_random_engine_run(seed):
    run = Run(seed)
    client = ClientBook(run.md.book(ETHP, 10_000))
    for step in range(400):
        before = len(run.deltas)
        run.step()
        for delta in run.deltas[before:]:
            client.apply(delta)
        # the L2 book at every sequence number: the client's copy, market data's, and the engine's own levels
        bids, asks = levels(views.book_view(run.d.engine, ETHP, depth=10_000))
        assert client.sorted() == (bids, asks)
        snapshot = run.md.book(ETHP, 10_000)
        assert (snapshot.bids, snapshot.asks, snapshot.seq) == (bids, asks, client.seq)
        assert run.md.best(ETHP) == (bids[0][0] if bids else None, asks[0][0] if asks else None)
        if step % 50 == 49:
            check_series(run)
    check_series(run)
    assert len(run.fills) > 50 and run.funding, "the run must trade and pay funding to test anything"


def check_series(run: Run) -> None:
    md = run.md
    assert md.time == run.d.engine.time
    for name, interval in INTERVALS.items():
        expected = brute_candles(run.fills, interval)[-MAX_CANDLES:]
        got = [(c.start, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades)
               for c in md.candles(ETHP, name, limit=MAX_CANDLES)]
        assert got == expected, name
        if expected:  # a start and an end select by bucket start
            lo, hi = expected[len(expected) // 3][0], expected[2 * len(expected) // 3][0]
            window = [c for c in expected if lo <= c[0] <= hi]
            assert [c.start for c in md.candles(ETHP, name, start=lo, end=hi, limit=1000)] == [c[0] for c in window]
            assert [c.start for c in md.candles(ETHP, name, limit=2)] == [c[0] for c in expected[-2:]]
    stats = md.day_stats(ETHP)
    assert (stats.open, stats.high, stats.low, stats.last, stats.volume, stats.quote_volume, stats.trades) == \
        brute_day(run.fills, run.d.engine.time)
    trades = md.trades(ETHP, MAX_TRADES)
    assert [(t.ordinal, t.time, t.price, t.size, t.taker_side) for t in trades] == \
        [(f.ordinal, t, f.price, f.size, f.taker_side) for t, f in reversed(run.fills[-MAX_TRADES:])]
    assert [f.ordinal for f in md.funding_history(ETHP, limit=10_000)] == [f.ordinal for f in run.funding]
    # each FundingPaid's payments add up to what it says was paid and received, exactly (the engine's own rule)
    by_event = defaultdict(list)
    for p in run.payments:
        by_event[p.ordinal].append(p.amount)
    for f in run.funding:
        amounts = by_event.get(f.ordinal, [])
        assert -sum(a for a in amounts if a < 0) == f.paid and sum(a for a in amounts if a > 0) == f.received


def test_funding_payments_match_each_accounts_collateral_change():
    run = Run(11)
    for _ in range(300):
        run.step()
    engine = run.d.engine
    collateral = {(a.trader, a.strategy): a.collateral for a in engine.accounts.values() if not a.is_fund}
    updates = run.d.advance(3_600_000)
    paid = [u for u in updates if isinstance(u, FundingPaid)]
    outcome = run.md.apply(updates)
    assert paid and paid[0].per_unit, "a funding interval with a non-zero rate"
    after = {(a.trader, a.strategy): a.collateral for a in engine.accounts.values() if not a.is_fund}
    changed = {k: after[k] - collateral[k] for k in after if after[k] != collateral[k]}
    assert changed == {(p.trader, p.strategy): p.amount for p in outcome.payments if p.amount}


def test_a_restart_from_the_engine_state_serves_the_same_book_and_chains_on():
    run = Run(3)
    for _ in range(200):
        run.step()
    seed = views.market_data_seed(run.d.engine)
    fresh = MarketData(run.md.unit_of)
    fresh.restart(seed.ordinal, seed.time, seed.orders, seed.positions)
    snap = fresh.book(ETHP, 10_000)
    assert (snap.bids, snap.asks, snap.checksum) == (lambda b: (b.bids, b.asks, b.checksum))(run.md.book(ETHP, 10_000))
    assert snap.seq == run.d.engine.ordinal - 1
    client = ClientBook(snap)
    for _ in range(200):
        before_updates = len(run.d.updates)
        run.step()
        for updates in run.d.updates[before_updates:]:
            for delta in fresh.apply(updates).deltas:
                client.apply(delta)
        assert client.sorted() == levels(views.book_view(run.d.engine, ETHP, depth=10_000))
    # funding payments after the restart come from the seeded positions: the same as the original's
    updates = run.d.advance(3_600_000)
    assert fresh.apply(updates).payments == run.md.apply(updates).payments


def test_series_replayed_from_history_equal_the_live_ones():
    run = Run(5)
    for _ in range(300):
        run.step()
    everything = [u for entry in run.d.updates for u in entry]
    seed = views.market_data_seed(run.d.engine)
    fresh = MarketData(run.md.unit_of)
    fresh.restart(seed.ordinal, seed.time, seed.orders, seed.positions)
    fresh.replay_series([u for u in everything if isinstance(u, (Fill, FundingPaid, TimeAdvanced))], from_genesis=True)
    for name in INTERVALS:
        assert fresh.candles(ETHP, name, limit=MAX_CANDLES) == run.md.candles(ETHP, name, limit=MAX_CANDLES)
    assert fresh.day_stats(ETHP) == run.md.day_stats(ETHP)
    assert fresh.trades(ETHP, MAX_TRADES) == run.md.trades(ETHP, MAX_TRADES)
    assert fresh.funding_history(ETHP, limit=10_000) == run.md.funding_history(ETHP, limit=10_000)


def test_book_resume_chains_from_a_held_sequence_number_only():
    run = Run(7)
    for _ in range(150):
        run.step()
    deltas = run.deltas
    assert len(deltas) > 10
    middle = deltas[len(deltas) // 2]
    assert run.md.deltas_after(ETHP, middle.seq) == deltas[len(deltas) // 2 + 1:]
    assert run.md.deltas_after(ETHP, deltas[-1].seq) == []
    between = [d.seq + 1 for d, nxt in zip(deltas, deltas[1:]) if nxt.seq - d.seq > 1]
    assert between and all(run.md.deltas_after(ETHP, seq) is None for seq in between)  # not a seq the book had
    assert run.md.deltas_after(ETHP, deltas[-1].seq + 10) is None


def test_a_taker_that_never_rests_changes_no_level_and_yields_no_delta():
    d = Driver()
    md = MarketData(lambda m: ONE)
    for updates in (d.price(usd(2000)), d.deposit(trader(1), usd(10_000)), d.deposit(trader(2), usd(10_000))):
        md.apply(updates)
    rest = md.apply(d.order(trader(1), SELL, usd(2000), 100_000, LIMIT))
    assert [(x.asks, x.bids) for x in rest.deltas] == [(((usd(2000), 100_000),), ())]
    take = md.apply(d.order(trader(2), BUY, usd(2000), 40_000, LIMIT))
    assert [(x.asks, x.prev_seq) for x in take.deltas] == [(((usd(2000), 60_000),), rest.deltas[0].seq)]
    # an IOC remainder that never rested: no delta at all
    assert md.apply(d.order(trader(2), SELL, usd(1990), 10_000, MARKET)).deltas == []


def test_checksum_vector_of_the_docs():
    """docs/api.md gives a book, its canonical text and its CRC-32: the doc and the code must agree."""
    text = (REPO / "docs" / "api.md").read_text()
    block = re.search(r"<!-- checksum-vector -->\s*```\n(.*?)```", text, re.S).group(1)
    fields = dict(line.split(": ", 1) for line in block.strip().splitlines())
    bids = [tuple(map(int, lv.split(":"))) for lv in fields["bids"].split(", ")]
    asks = [tuple(map(int, lv.split(":"))) for lv in fields["asks"].split(", ")]
    assert checksum_string(bids, asks) == fields["text"]
    assert book_checksum(bids, asks) == int(fields["checksum"])
    assert book_checksum([], []) == int(fields["empty"])
    # only the top 25 levels per side count
    deep = [(1000 - i, 1) for i in range(30)]
    assert book_checksum(deep, []) == book_checksum(deep[:25], []) != book_checksum(deep[:24], [])
