"""Hypothesis stateful test over random order flow, price moves, funding, withdrawals and epochs.

After every step: conservation (exact, per token), open interest nets to zero, the book is never crossed, no
trader account is below maintenance margin with positions or negative without, open-order totals match the
orders, the escape-hatch bound (sum of BALANCE + WITHDRAWAL <= deposits). At the end: replaying the log from
genesis and from a mid-way snapshot gives the same root and the same updates.

DDX_ENGINE_EXAMPLES (default 150) and DDX_ENGINE_STEPS (default 50) turn it up, e.g.
    DDX_ENGINE_EXAMPLES=1000 DDX_ENGINE_STEPS=200 .venv/bin/python -m pytest tests/engine/test_properties.py
"""

from __future__ import annotations

import os

from engine_helpers import BTCP, ETHP, USDC, Driver, conservation, items_except_cursors, market_params, trader, usd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ddx_offchain.engine import Engine, GenesisConfig
from ddx_offchain.engine import margin as mg
from ddx_offchain.engine.commands import (
    BUY,
    FILL_OR_KILL,
    LIMIT,
    LIMIT_IOC,
    MAIN_STRATEGY,
    MARKET,
    POST_ONLY,
    SELL,
    CancelAll,
    CancelOrder,
    FundInsurance,
    ModifyOrder,
    PlaceOrder,
    name32,
)
from ddx_offchain.engine.updates import Accepted

EXAMPLES = int(os.environ.get("DDX_ENGINE_EXAMPLES", "150"))
STEPS = int(os.environ.get("DDX_ENGINE_STEPS", "50"))
TRADERS = [trader(i) for i in range(1, 6)]
ALT = name32("alt")
DAI = bytes.fromhex("6b175474e89094c44da98b954eedeac495271d0f")
SOLP = name32("SOLP")  # settled in a second collateral token: separate margin, separate conservation
MARKETS = {ETHP: 10_000, BTCP: 1_000_000, SOLP: 1_000}
START = {ETHP: usd(2000), BTCP: usd(60_000), SOLP: usd(150)}


def genesis() -> GenesisConfig:
    return GenesisConfig(
        tokens=(USDC, DAI),
        markets=(market_params(ETHP), market_params(BTCP, tick=1_000_000, lot=1_000, maker_fee_bps=0,
                                                    taker_fee_bps=7, funding_dampener=3),
                 market_params(SOLP, token=DAI, tick=1_000, lot=1_000, initial_margin_bps=2_000,
                               maintenance_margin_bps=1_000, liquidation_fee_bps=100)),
        max_open_orders=12,
        epochs_retained=2,
    )


class EngineMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.d = Driver(Engine(genesis()))
        self.credited = {}  # trader + token -> every deposit credited to the pair (all strategies)
        for i, who in enumerate(TRADERS):
            self._deposit(who, usd(2_000 + 3_000 * i))
        self._deposit(TRADERS[0], usd(5_000), strategy=ALT)
        for who in TRADERS[1:4]:
            self._deposit(who, usd(3_000), token=DAI)
        self.d.apply(self._prices(START))
        self.snapshot_at = None

    def _deposit(self, who, amount, strategy=MAIN_STRATEGY, token=USDC):
        self.d.deposit(who, amount, strategy=strategy, token=token)
        self.credited[who + token] = self.credited.get(who + token, 0) + amount

    def _prices(self, prices):
        from ddx_offchain.engine.commands import IndexPrice, IndexPrices

        return IndexPrices(self.d.rid(), tuple(IndexPrice(m, p) for m, p in sorted(prices.items())))

    @property
    def e(self) -> Engine:
        return self.d.engine

    # ------------------------------------------------------------------ rules

    @rule(who=st.sampled_from(TRADERS), alt=st.booleans(), market=st.sampled_from(sorted(MARKETS)),
          side=st.sampled_from((BUY, SELL)),
          kind=st.sampled_from((LIMIT, LIMIT, LIMIT, LIMIT_IOC, POST_ONLY, MARKET, FILL_OR_KILL)),
          offset=st.integers(-40, 40), lots=st.one_of(st.integers(1, 50), st.integers(50, 8_000)),
          reduce_only=st.booleans(), cid=st.integers(0, 3), ttl=st.sampled_from((0, 0, 60_000, 3_600_000)))
    def place(self, who, alt, market, side, kind, offset, lots, reduce_only, cid, ttl):
        """Every order type, with client ids drawn from a small set (so they collide) and good-till-time expiries."""
        tick = MARKETS[market]
        index = self.e.markets[market].index
        price = 0 if kind == MARKET else max(tick, index // tick * tick + offset * tick)
        strategy = ALT if alt and who == TRADERS[0] else MAIN_STRATEGY
        client_id = bytes([cid]) * 32 if cid else b"\x00" * 32
        expiry = self.e.time + ttl if ttl and kind in (LIMIT, POST_ONLY) else 0
        self.d.apply(PlaceOrder(self.d.rid(), who, strategy, market, side, kind, price, lots * 1_000,
                                reduce_only, client_id, expiry))

    @rule(to_alt=st.booleans(), token=st.sampled_from((USDC, DAI)), fraction=st.integers(1, 120))
    def transfer(self, to_alt, token, fraction):
        """Collateral moved between the first trader's two strategies, sometimes more than is free."""
        from ddx_offchain.engine.commands import Transfer

        who = TRADERS[0]
        source, target = (MAIN_STRATEGY, ALT) if to_alt else (ALT, MAIN_STRATEGY)
        account = self.e.accounts.get(who + source + token)
        amount = max(1, (account.collateral if account is not None else 1) * fraction // 100)
        self.d.apply(Transfer(self.d.rid(), who, source, target, token, amount))

    @rule(maker=st.sampled_from(TRADERS), taker=st.sampled_from(TRADERS), market=st.sampled_from(sorted(MARKETS)),
          side=st.sampled_from((BUY, SELL)), offset=st.integers(-20, 20), lots=st.integers(1, 5_000),
          taker_kind=st.sampled_from((LIMIT, LIMIT_IOC, MARKET)), extra=st.integers(0, 3_000))
    def trade(self, maker, taker, market, side, offset, lots, taker_kind, extra):
        """A resting order and a crossing one: most fills (and so positions and liquidations) come from here."""
        tick = MARKETS[market]
        price = max(tick, self.e.markets[market].index // tick * tick + offset * tick)
        self.d.apply(PlaceOrder(self.d.rid(), maker, MAIN_STRATEGY, market, side, LIMIT, price, lots * 1_000, False))
        self.d.apply(PlaceOrder(self.d.rid(), taker, MAIN_STRATEGY, market, 1 - side, taker_kind,
                                0 if taker_kind == MARKET else price, (lots + extra) * 1_000, False))

    @precondition(lambda self: self.e.orders)
    @rule(pick=st.integers(0, 10**6))
    def cancel(self, pick):
        order = sorted(self.e.orders.values(), key=lambda o: o.seq)[pick % len(self.e.orders)]
        a = order.account
        self.d.apply(CancelOrder(self.d.rid(), a.trader, a.strategy, order.market.id, order.id))

    @rule(who=st.sampled_from(TRADERS), actions=st.lists(st.tuples(
        st.sampled_from((0, 0, 1, 2, 5)), st.sampled_from(sorted(MARKETS)), st.sampled_from((BUY, SELL)),
        st.sampled_from((LIMIT, LIMIT_IOC, POST_ONLY, MARKET)), st.integers(-40, 40), st.integers(1, 3_000),
        st.booleans(), st.integers(0, 10**6)), min_size=1, max_size=6), atomic=st.booleans())
    def batch(self, who, actions, atomic):
        """Batches of places, cancels and modifies (of existing orders or of the batch's own earlier places) and
        the odd unknown kind: the invariants hold after each, whatever each action's verdict."""
        from ddx_offchain.engine.commands import Batch, BatchAction
        from ddx_offchain.protocol.requests import batch_action_id

        rid = self.d.rid()
        built = []
        for i, (kind, market, side, order_type, offset, lots, reduce_only, pick) in enumerate(actions):
            tick = MARKETS[market]
            price = max(tick, self.e.markets[market].index // tick * tick + offset * tick)
            mine = sorted((o for o in self.e.orders.values() if o.account.trader == who), key=lambda o: o.seq)
            target = mine[pick % len(mine)].id if mine and pick % 2 else (
                batch_action_id(rid, pick % i) if i else b"\x01" * 32)
            if kind == 0:
                order_type = POST_ONLY if atomic else order_type  # all or nothing: quotes that never trade
                built.append(BatchAction(0, market, side, order_type, 0 if order_type == MARKET else price,
                                         lots * 1_000, reduce_only, b"\x00" * 32))
            elif kind == 1:
                built.append(BatchAction(1, market, 0, 0, 0, 0, False, target))
            else:
                built.append(BatchAction(kind, market, 0, 0, price, lots * 1_000, False, target))
        before = items_except_cursors(self.e) if atomic else None
        ups = self.d.apply(Batch(rid, who, MAIN_STRATEGY, tuple(built), atomic))
        if atomic and type(ups[0]) is not Accepted:  # all or nothing: a rejected one left every item as it was
            assert len(ups) == 1 and items_except_cursors(self.e) == before

    @rule(who=st.sampled_from(TRADERS), delay=st.integers(0, 2 * 3_600_000), whole=st.booleans(),
          market=st.sampled_from([b"\x00" * 32, ETHP]))
    def schedule_cancel(self, who, delay, whole, market):
        """Dead man's switches set, moved and cleared (delay 0), firing on later time advances."""
        from ddx_offchain.engine.commands import ScheduleCancel

        when = self.e.time + delay if delay else 0
        strategy = b"\x00" * 32 if whole else MAIN_STRATEGY
        self.d.apply(ScheduleCancel(self.d.rid(), who, strategy, market, when))

    @rule(who=st.sampled_from(TRADERS), market=st.sampled_from(sorted(MARKETS)), side=st.sampled_from((BUY, SELL)),
          direction=st.integers(0, 1), offset=st.integers(1, 60), order_type=st.sampled_from((LIMIT, LIMIT_IOC, MARKET)),
          lots=st.integers(0, 3_000), attached=st.booleans(), group=st.integers(0, 2))
    def place_trigger(self, who, market, side, direction, offset, order_type, lots, attached, group):
        """Stops, take-profits and attached TP/SL in groups; they fire on later price moves (the price rule)."""
        from ddx_offchain.engine.commands import PlaceTrigger

        tick = MARKETS[market]
        mark = self.e.markets[market].mark
        trigger_price = max(tick, mark // tick * tick + (offset if direction == 0 else -offset) * tick)
        limit = 0 if order_type == MARKET else trigger_price
        group_id = bytes([group]) * 32 if group else b"\x00" * 32
        self.d.apply(PlaceTrigger(self.d.rid(), who, MAIN_STRATEGY, market, side, direction, trigger_price, order_type,
                                  limit, lots * 1_000, attached, attached, group_id, b"\x00" * 32))

    @rule(who=st.sampled_from(TRADERS), market=st.sampled_from(sorted(MARKETS)), side=st.sampled_from((BUY, SELL)),
          lots=st.integers(1, 3_000), slices=st.integers(1, 6), interval=st.integers(1_000, 1_800_000),
          offset=st.integers(-20, 20), market_slices=st.booleans())
    def place_twap(self, who, market, side, lots, slices, interval, offset, market_slices):
        """TWAPs whose slices run on later time advances, by limit or at market."""
        from ddx_offchain.engine.commands import PlaceTwap

        tick = MARKETS[market]
        limit = 0 if market_slices else max(tick, self.e.markets[market].index // tick * tick + offset * tick)
        self.d.apply(PlaceTwap(self.d.rid(), who, MAIN_STRATEGY, market, side, lots * 1_000, slices * interval,
                               interval, limit, False))

    @rule(who=st.sampled_from(TRADERS), agent=st.integers(1, 3), ttl=st.integers(1, 4 * 3_600_000),
          revoke=st.booleans())
    def agents(self, who, agent, ttl, revoke):
        from ddx_offchain.engine.commands import ApproveAgent, RevokeAgent

        agent_address = bytes([0xA0 + agent]) * 20
        if revoke:
            self.d.apply(RevokeAgent(self.d.rid(), who, MAIN_STRATEGY, agent_address))
        else:
            self.d.apply(ApproveAgent(self.d.rid(), who, MAIN_STRATEGY, agent_address, 1, self.e.time + ttl))

    @rule(who=st.sampled_from(TRADERS), market=st.sampled_from([b"\x00" * 32, ETHP]))
    def cancel_all(self, who, market):
        self.d.apply(CancelAll(self.d.rid(), who, MAIN_STRATEGY, market))

    @precondition(lambda self: self.e.orders)
    @rule(pick=st.integers(0, 10**6), offset=st.integers(-40, 40), lots=st.integers(1, 3_000))
    def modify(self, pick, offset, lots):
        order = sorted(self.e.orders.values(), key=lambda o: o.seq)[pick % len(self.e.orders)]
        a = order.account
        tick = order.market.tick
        price = max(tick, order.market.index // tick * tick + offset * tick)
        self.d.apply(ModifyOrder(self.d.rid(), a.trader, a.strategy, order.market.id, order.id, price,
                                 lots * 1_000))

    @rule(who=st.sampled_from(TRADERS), fraction=st.integers(1, 100), dai=st.booleans())
    def withdraw(self, who, fraction, dai):
        token = DAI if dai else USDC
        a = self.e.accounts.get(who + MAIN_STRATEGY + token)
        amount = max(1, (a.collateral if a else 1) * fraction // 100)
        self.d.withdraw(who, amount, token=token)

    @rule(who=st.sampled_from(TRADERS), amount=st.integers(1, 10_000), dai=st.booleans())
    def deposit(self, who, amount, dai):
        self._deposit(who, usd(amount), token=DAI if dai else USDC)

    @rule(market=st.sampled_from(sorted(MARKETS)),
          move_bps=st.one_of(st.integers(-150, 150), st.integers(-3_000, 3_000)))
    def price(self, market, move_bps):
        index = self.e.markets[market].index
        self.d.apply(self._prices({market: max(MARKETS[market], index + index * move_bps // 10_000)}))

    @rule(ms=st.integers(1, 3 * 3_600_000))
    def advance(self, ms):
        self.d.advance(ms)

    @rule()
    def epoch(self):
        self.d.epoch()
        self.check_escape_bound()

    @precondition(lambda self: self.e.ledgers[USDC].fees > 0)
    @rule(fraction=st.integers(1, 100))
    def fund_insurance(self, fraction):
        amount = max(1, self.e.ledgers[USDC].fees * fraction // 100)
        self.d.apply(FundInsurance(self.d.rid(), USDC, amount))

    @rule(market=st.sampled_from(sorted(MARKETS)), imr=st.integers(200, 3_000), mmr_share=st.integers(10, 90))
    def change_margins(self, market, imr, mmr_share):
        from ddx_offchain.engine.commands import UpdateMarket

        m = self.e.markets[market]
        params = market_params(market, token=m.token, tick=m.tick, lot=m.lot, initial_margin_bps=imr,
                               maintenance_margin_bps=max(1, imr * mmr_share // 100))
        self.d.apply(UpdateMarket(self.d.rid(), params))

    @precondition(lambda self: self.snapshot_at is None)
    @rule()
    def take_snapshot(self):
        self.snapshot_at = (len(self.d.log), self.e.snapshot())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def conserved(self):
        assert conservation(self.e) == {USDC: 0, DAI: 0}

    @invariant()
    def open_interest_nets_to_zero(self):
        for m in self.e.markets.values():
            assert sum(p.size for p in m.positions.values()) == 0
            assert all(p.size for p in m.positions.values())
        total = sum(p.size for a in self.e.accounts.values() for p in a.positions.values())
        assert total == 0

    @invariant()
    def book_never_crossed(self):
        for m in self.e.markets.values():
            book = m.book
            if book.bid_prices and book.ask_prices:
                assert book.bid_prices[-1] < book.ask_prices[0]
            for side, prices in ((BUY, book.bid_prices), (SELL, book.ask_prices)):
                assert prices == sorted(prices) and sorted(book.levels[side]) == prices
                for p in prices:
                    dq, live = book.levels[side][p]
                    assert live == sum(1 for o in dq if o.remaining) > 0

    @invariant()
    def no_trader_below_maintenance_or_negative(self):
        for a in self.e.accounts.values():
            if a.is_fund:
                continue
            if any(p.size for p in a.positions.values()):
                e, mm = mg.equity_and_mm(a)
                assert e >= mm, (a.trader.hex(), e, mm)
            else:
                assert a.collateral >= 0

    @invariant()
    def open_totals_match_orders(self):
        for a in self.e.accounts.values():
            for mid, pos in a.positions.items():
                buys = sum(o.remaining for o in a.orders.values() if o.market.id == mid and o.side == BUY)
                sells = sum(o.remaining for o in a.orders.values() if o.market.id == mid and o.side == SELL)
                assert (pos.open_buy, pos.open_sell) == (buys, sells)
        assert sum(len(a.orders) for a in self.e.accounts.values()) == len(self.e.orders)

    @invariant()
    def withdrawals_never_negative(self):
        for leaf in self.e.withdrawals.values():
            assert leaf.amount > 0

    def check_escape_bound(self):
        for token, ledger in self.e.ledgers.items():
            escape = sum(leaf.amount for leaf in self.e.balances.values() if leaf.token == token)
            assert escape + ledger.withdrawable <= ledger.deposited
        # every BALANCE leaf's `deposited` is exactly what the engine credited to the pair (the escape hatch returns
        # on-chain deposits beyond it), and a pair that was ever credited keeps its leaf
        assert {pair: leaf.deposited for pair, leaf in self.e.balances.items() if leaf.deposited} == self.credited
        for pair in self.credited:
            key, value = self.e.balances[pair].item()
            assert value is not None and self.e.tree.get(key) == value

    def teardown(self):
        if not hasattr(self, "d"):
            return
        self.d.epoch()  # every run ends on an epoch boundary: the escape-hatch bound is checked at least once
        self.check_escape_bound()
        root = self.e.state_root()
        # replay from genesis with the liquidation sweep's safe-range cache switched off: same updates, same root
        # (the cache may only ever skip accounts that would pass the exact check). The switch replaces a module
        # function, which only the pure-Python engine looks up at call time: in the compiled build (where the
        # functions call each other natively) this is a plain replay, and `make test`'s pure pass checks the cache.
        from ddx_offchain.engine import risk

        remember = risk._remember_safe_range
        risk._remember_safe_range = lambda account, cushion, held: None
        try:
            replay = Engine(genesis())
            for command, updates in zip(self.d.log, self.d.updates):
                assert replay.apply(command) == updates
        finally:
            risk._remember_safe_range = remember
        assert replay.state_root() == root
        if self.snapshot_at is not None:
            at, data = self.snapshot_at
            restored = Engine.restore(data)
            fresh = Engine(genesis())
            for command in self.d.log[:at]:
                fresh.apply(command)
            for command in self.d.log[at:]:
                assert restored.apply(command) == fresh.apply(command)
            assert restored.state_root() == root


EngineMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineProperties = EngineMachine.TestCase
