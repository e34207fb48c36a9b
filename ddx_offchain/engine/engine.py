"""The engine: apply(command) -> execution updates. Deterministic, integers only, no clock, no I/O.

Every handler validates first and returns a rejection before touching any state; once it calls `_accept` it
cannot fail. That is what makes "no request is ever half-applied" true by construction.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..protocol import inbox as ib
from ..protocol import requests as pr
from ..protocol.errors import ProtocolError
from . import book as bk
from . import margin as mg
from . import risk
from . import snapshot as snapshot_codec
from . import triggers as tg
from . import twap as tw
from .codec import address_word, key_of, uint_word, value_of
from .commands import (
    BUY,
    FILL_OR_KILL,
    LIMIT,
    LIMIT_IOC,
    MAIN_STRATEGY,
    MARKET,
    POST_ONLY,
    SELL,
    ZERO_ADDRESS,
    ZERO_ID,
    AdvanceEpoch,
    AdvanceTime,
    ApproveAgent,
    Batch,
    CancelAll,
    CancelOrder,
    ChainBlock,
    CreateStrategy,
    ForcedRequest,
    FundInsurance,
    IndexPrices,
    ListMarket,
    ListToken,
    ModifyOrder,
    PlaceOrder,
    PlaceTrigger,
    PlaceTwap,
    RevokeAgent,
    ScheduleCancel,
    Transfer,
    UpdateMarket,
    WithdrawIntent,
    action_command,
    from_request,
)
from .config import MAX_QUANTITY, GenesisConfig, market_params_problem
from .errors import EngineInvariantError, UnknownEpochError
from .reasons import CancelReason, Reject
from .state import (
    FUND_STRATEGY,
    FUND_TRADER,
    K_BALANCE,
    K_SYSTEM,
    K_WITHDRAWAL,
    SYSTEM_CURSORS,
    Account,
    Agent,
    EpochRecord,
    Market,
    Order,
    PairLeaf,
    Position,
    Schedule,
    TokenLedger,
    Trader,
)
from .tree_port import new_tree, prove, tree_from_items
from .updates import (
    CANCELLED,
    FILLED,
    OPEN,
    SCHEDULE_CLEARED,
    SCHEDULE_FIRED,
    SCHEDULE_SET,
    Accepted,
    AgentUpdate,
    BlockApplied,
    CancelScheduled,
    DepositCredited,
    DepositIgnored,
    EpochFrozen,
    FeeUpdate,
    Fill,
    ForcedRequestApplied,
    InsuranceUpdate,
    MarketUpdate,
    OrderUpdate,
    PositionUpdate,
    PriceUpdate,
    Rejected,
    StrategyCreated,
    StrategyUpdate,
    TimeAdvanced,
    TokenListed,
    Transferred,
    WithdrawalUpdate,
)

BPS = 10_000
MAX_AGENTS = 8  # agent approvals a trader may hold at once (expired ones make room when a new one is approved)
MAX_SCHEDULES = 8  # scheduled cancels a trader may hold at once
_SYSTEM_KEY = key_of(K_SYSTEM, uint_word(SYSTEM_CURSORS))


class Engine:
    def __init__(self, genesis: GenesisConfig, *, _empty: bool = False) -> None:
        genesis.validate()
        self.genesis = genesis
        self.tree = new_tree()
        self.markets: dict[bytes, Market] = {}
        self.ledgers: dict[bytes, TokenLedger] = {}
        self.accounts: dict[bytes, Account] = {}  # trader + strategy + token -> Account
        self.traders: dict[bytes, Trader] = {}
        self.orders: dict[bytes, Order] = {}  # open orders by id
        self.withdrawals: dict[bytes, PairLeaf] = {}  # trader + token -> WITHDRAWAL leaf
        self.balances: dict[bytes, PairLeaf] = {}  # trader + token -> BALANCE leaf
        self.epochs: dict[int, EpochRecord] = {}
        self.agents: dict[bytes, Agent] = {}  # trader + agent + strategy -> approval
        self.agents_of: dict[bytes, set[bytes]] = {}  # trader -> keys of its approvals (derived)
        self.schedules: dict[bytes, Schedule] = {}  # trader + strategy + market -> scheduled cancel
        self.schedules_of: dict[bytes, int] = {}  # trader -> how many it holds (derived)
        self._due: list[tuple[int, bytes]] = []  # min-heap of (time, key); stale entries skipped (derived)
        self.client_ids: dict[bytes, bytes] = {}  # trader + strategy + client order id -> open order id (derived)
        self._expiring: list[tuple[int, int, bytes]] = []  # min-heap of (expiry, seq, order id) (derived)
        self.triggers: dict = {}  # trigger id -> Trigger (engine/triggers.py)
        self.triggers_of: dict[bytes, set[bytes]] = {}  # account skey -> its trigger ids (derived)
        self.trigger_heaps: dict[bytes, tuple[list, list]] = {}  # market -> (rises-to, falls-to) heaps (derived)
        self.trigger_groups: dict[bytes, set[bytes]] = {}  # trader + strategy + group -> trigger ids (derived)
        self.attached: dict[bytes, set[bytes]] = {}  # account skey + market -> attached trigger ids (derived)
        self.twaps: dict = {}  # TWAP id -> Twap (engine/twap.py)
        self.twaps_of: dict[bytes, set[bytes]] = {}  # account skey -> its TWAP ids (derived)
        self.twap_due: list[tuple[int, int, bytes]] = []  # min-heap of (due time, seq, id) (derived)
        # Retained epochs are kept as undo logs, not tree copies: _undo[e] maps every item key changed after the
        # freeze of e (until the next freeze, or now for the latest) to its value at that freeze (None: absent).
        # Freezing costs nothing beyond the changes; a retained epoch's tree is rebuilt only when proofs ask.
        self._undo: dict[int, dict[bytes, bytes | None]] = {}
        self._undo_open: dict[bytes, bytes | None] | None = None  # _undo of the latest retained epoch
        self._epoch_tree_cache: dict = {}
        self.default_token = genesis.tokens[0]
        self.max_open_orders = genesis.max_open_orders
        self.max_strategies = genesis.max_strategies
        self.epochs_retained = genesis.epochs_retained
        self.deposit_seq = 0
        self.forced_seq = 0  # forced requests taken from the L1 inbox
        self.inbox_acc = ib.ZERO32  # the inbox's rolling hash over every deposit and forced request taken
        self.block_number = 0
        self.block_hash = ZERO_ID
        self.time = 0
        self.epoch = 0
        self.ordinal = 1  # the next update's ordinal
        self.order_seq = 1  # the next resting order's time priority
        self.dirty: set = set()
        self.out: list = []
        self._handlers = {
            PlaceOrder: self._place_order,
            CancelOrder: self._cancel_order,
            CancelAll: self._cancel_all,
            ModifyOrder: self._modify_order,
            WithdrawIntent: self._withdraw,
            CreateStrategy: self._create_strategy,
            Batch: self._batch,
            ApproveAgent: self._approve_agent,
            RevokeAgent: self._revoke_agent,
            ScheduleCancel: self._schedule_cancel,
            Transfer: self._transfer,
            PlaceTrigger: self._place_trigger,
            PlaceTwap: self._place_twap,
            ChainBlock: self._chain_block,
            IndexPrices: self._index_prices,
            AdvanceTime: self._advance_time,
            AdvanceEpoch: self._advance_epoch,
            ListMarket: self._list_market,
            UpdateMarket: self._update_market,
            ListToken: self._list_token,
            FundInsurance: self._fund_insurance,
        }
        if _empty:
            return
        for token in genesis.tokens:
            self._add_token(token)
        for params in genesis.markets:
            self._add_market(params)

    # ------------------------------------------------------------------------------------------ entry points

    def apply(self, command) -> list:
        """Apply one sequenced command; returns its execution updates (first Accepted or Rejected)."""
        out: list = []
        self.out = out
        kind = type(command)
        handler = self._handlers.get(kind)
        if handler is None:
            self._reject(command, Reject.MALFORMED, "not an engine command")
            return out
        if kind in _TRADER_COMMANDS:
            # the zero address names the insurance fund's account: no request may act as it
            t = command.trader
            s = command.strategy
            if type(t) is not bytes or len(t) != 20 or t == ZERO_ADDRESS or type(s) is not bytes or len(s) != 32:
                self._reject(command, Reject.MALFORMED, "trader must be a non-zero address, strategy a bytes32")
                return out
        self._handle(handler, command)
        if not out or type(out[0]) not in _VERDICTS:
            raise EngineInvariantError(f"{kind.__name__} yielded {out[:1]!r} first, not Accepted or Rejected")
        return out

    def ledger_imbalance(self) -> dict[bytes, int]:
        """Per token: deposited - (sum over accounts of collateral - cost basis + fees + withdrawable). Zero
        always: money only moves between these (docs/engine.md, "Conservation"). O(accounts): checked per epoch."""
        held = dict.fromkeys(self.ledgers, 0)
        for a in self.accounts.values():
            held[a.token] += a.collateral - sum(p.cost for p in a.positions.values())
        return {
            token: ledger.deposited - (held[token] + ledger.fees + ledger.withdrawable)
            for token, ledger in self.ledgers.items()
        }

    def state_root(self) -> bytes:
        self.flush()
        return self.tree.root()

    # ------------------------------------------------------------------------------------------ plumbing

    def _accept(self, command) -> None:
        n = self.ordinal
        self.ordinal = n + 1
        self.out.append(Accepted(n, command.request_id, type(command).__name__))

    def _handle(self, handler, command) -> None:
        """Run a command's handler; a field of the wrong Python type, met while validating (nothing was accepted or
        changed yet), rejects the command as malformed."""
        start = len(self.out)
        try:
            handler(command)
        except (TypeError, AttributeError) as exc:
            if len(self.out) > start:
                raise
            self._reject(command, Reject.MALFORMED, f"malformed field: {exc}")

    def _reject(self, command, reason: Reject, detail: str) -> None:
        rid = getattr(command, "request_id", ZERO_ID)
        self._rejected(rid if isinstance(rid, bytes) else ZERO_ID, type(command).__name__, reason, detail)

    def _rejected(self, request_id: bytes, command: str, reason: Reject, detail: str) -> None:
        n = self.ordinal
        self.ordinal = n + 1
        self.out.append(Rejected(n, request_id, command, int(reason), detail))

    def _emit(self, cls, *fields) -> None:
        n = self.ordinal
        self.ordinal = n + 1
        self.out.append(cls(n, *fields))

    def _position_changed(self, pos: Position) -> None:
        a = pos.account
        a.version += 1
        self.dirty.add(pos)
        bk.track(pos)
        n = self.ordinal
        self.ordinal = n + 1
        self.out.append(PositionUpdate(n, a.trader, a.strategy, pos.market.id, pos.size, pos.cost, pos.realized))
        if self.attached:
            tg.position_changed(self, pos)

    def _account_changed(self, a: Account) -> None:
        a.version += 1
        self.dirty.add(a)
        n = self.ordinal
        self.ordinal = n + 1
        if a.is_fund:
            self.out.append(InsuranceUpdate(n, a.token, a.collateral))
        else:
            self.out.append(StrategyUpdate(n, a.trader, a.strategy, a.token, a.collateral))

    def _fees_changed(self, ledger) -> None:
        self.dirty.add(ledger.fee_view)
        self._emit(FeeUpdate, ledger.token, ledger.fees)

    def _add_token(self, token: bytes) -> TokenLedger:
        fund = Account(FUND_TRADER, FUND_STRATEGY, token, is_fund=True)
        ledger = TokenLedger(token, fund)
        self.ledgers[token] = ledger
        self.accounts[fund.skey] = fund
        self.dirty.update((ledger, ledger.fee_view, fund))
        return ledger

    def _add_market(self, params) -> Market:
        m = Market(params)
        m.next_funding = (self.time // m.funding_interval + 1) * m.funding_interval
        self.markets[m.id] = m
        self.dirty.update((m, m.price_view, m.funding_view))
        return m

    def _position(self, account: Account, market: Market) -> Position:
        pos = account.positions.get(market.id)
        if pos is None:
            pos = account.positions[market.id] = Position(account, market)
        return pos

    def _account_for(self, trader: bytes, strategy: bytes, token: bytes) -> Account:
        """The strategy's account in `token`, created (with the trader and strategy) on first use."""
        key = trader + strategy + token
        a = self.accounts.get(key)
        if a is None:
            a = self.accounts[key] = Account(trader, strategy, token)
            t = self.traders.get(trader)
            if t is None:
                t = self.traders[trader] = Trader(trader)
            if strategy not in t.strategies:
                t.strategies.add(strategy)
                self.dirty.add(t)
                self._emit(StrategyCreated, trader, strategy)
            self.dirty.add(a)
        return a

    # ------------------------------------------------------------------------------------------ orders

    def _place_order(self, c) -> None:  # c: PlaceOrder
        self._submit(c, c.side, c.order_type, c.price, c.size, c.reduce_only, None, c.client_order_id, c.expiry)

    def _modify_order(self, c) -> None:  # c: ModifyOrder
        old = self.orders.get(c.order_hash) if isinstance(c.order_hash, bytes) else None
        if old is None or old.account.trader != c.trader or old.account.strategy != c.strategy \
                or old.market.id != c.market:
            return self._reject(c, Reject.UNKNOWN_ORDER, "no such open order")
        self._submit(c, old.side, old.order_type, c.price, c.size, old.reduce_only, old, old.client_order_id,
                     old.expiry)

    def _trading_market(self, c, *, priced: bool = True) -> Market | None:
        """The listed, active market `c` names (with an index price, when `priced`), or None once `c` is rejected:
        the first checks of every order-like command (orders, triggers, TWAPs)."""
        m = self.markets.get(c.market)
        if m is None:
            self._reject(c, Reject.UNKNOWN_MARKET, "market not listed")
            return None
        if not m.active:
            self._reject(c, Reject.MARKET_INACTIVE, "market inactive")
            return None
        if priced and not m.index:
            self._reject(c, Reject.NO_PRICE, "market has no index price yet")
            return None
        return m

    def _index_order(self, order: Order) -> None:
        """A resting order's client id and expiry, in the derived indexes (rebuilt from the ORDER items)."""
        cid = order.client_order_id
        if cid != ZERO_ID:
            a = order.account
            self.client_ids[a.trader + a.strategy + cid] = order.id
        if order.expiry:
            heapq.heappush(self._expiring, (order.expiry, order.seq, order.id))
            if len(self._expiring) > 4 * len(self.orders) + 1024:  # cancelled orders leave stale entries
                self._expiring = [(o.expiry, o.seq, o.id) for o in self.orders.values() if o.expiry]
                heapq.heapify(self._expiring)

    def order_by_client_id(self, trader: bytes, strategy: bytes, client_order_id: bytes):
        """The strategy's open order (or waiting trigger) with this client order id, or None."""
        order_id = self.client_ids.get(trader + strategy + client_order_id)
        if order_id is None:
            return None
        return self.orders.get(order_id) or self.triggers.get(order_id)

    def _expire_orders(self) -> None:
        """Good-till-time orders whose expiry the sequenced time reached are cancelled, by (expiry, seq)."""
        heap = self._expiring
        while heap and heap[0][0] <= self.time:
            expiry, _, order_id = heapq.heappop(heap)
            order = self.orders.get(order_id)
            if order is not None and order.expiry == expiry:
                self._remove_order(order, CancelReason.EXPIRED)

    def _submit(self, c, side, order_type, price, size, reduce_only, replacing, client_order_id, expiry) -> None:
        """Validate, plan the matching, check margin on the post-trade state, then (only then) execute."""
        m = self._trading_market(c)
        if m is None:
            return
        if side != BUY and side != SELL:
            return self._reject(c, Reject.MALFORMED, "side is 0 (buy) or 1 (sell)")
        if type(size) is not int or size <= 0 or size > MAX_QUANTITY or size % m.lot:
            return self._reject(c, Reject.BAD_SIZE, "size must be a positive multiple of the lot")
        if type(price) is not int:
            return self._reject(c, Reject.MALFORMED, "price must be an integer")
        if order_type == MARKET:
            if price:
                return self._reject(c, Reject.BAD_PRICE, "a market order carries price 0")
            mark = m.mark
            if side == BUY:
                limit = (mark + mark * m.band // BPS) // m.tick * m.tick
            else:
                limit = -((-(mark - mark * m.band // BPS)) // m.tick) * m.tick
                if limit < m.tick:
                    limit = m.tick
        elif order_type in (LIMIT, LIMIT_IOC, POST_ONLY, FILL_OR_KILL):
            if price <= 0 or price > MAX_QUANTITY or price % m.tick:
                return self._reject(c, Reject.BAD_PRICE, "price must be a positive multiple of the tick")
            limit = price
        else:
            return self._reject(c, Reject.MALFORMED, "unknown order type")
        if limit * size // m.one > m.max_notional:
            return self._reject(c, Reject.NOTIONAL_TOO_LARGE, "order notional above the market limit")
        account = self.accounts.get(c.trader + c.strategy + m.token)  # types checked in apply
        if account is None:
            t = self.traders.get(c.trader)
            if t is None or c.strategy not in t.strategies:
                return self._reject(c, Reject.UNKNOWN_STRATEGY, "strategy has no account")
            return self._reject(c, Reject.INSUFFICIENT_MARGIN, "no collateral in the market's token")
        order_id = c.request_id
        if type(order_id) is not bytes or len(order_id) != 32:
            return self._reject(c, Reject.MALFORMED, "request_id must be 32 bytes")
        if order_id in self.orders:
            return self._reject(c, Reject.DUPLICATE_ORDER_ID, "an open order already has this id")
        if type(client_order_id) is not bytes or len(client_order_id) != 32 or type(expiry) is not int:
            return self._reject(c, Reject.MALFORMED, "client_order_id is a bytes32, expiry a uint64")
        if client_order_id != ZERO_ID:
            holder = self.client_ids.get(c.trader + c.strategy + client_order_id)
            if holder is not None and (replacing is None or holder != replacing.id):
                return self._reject(c, Reject.DUPLICATE_CLIENT_ORDER_ID, "an open order has this client order id")
        if expiry and (order_type not in (LIMIT, POST_ONLY) or not self.time < expiry < 2**64):
            return self._reject(c, Reject.BAD_EXPIRY, f"an expiry is after the sequenced time {self.time}, on an "
                                "order that rests")
        pos = account.positions.get(m.id)
        if reduce_only:
            held = pos.size if pos is not None else 0
            if not held or (held > 0) == (side == BUY):
                return self._reject(c, Reject.REDUCE_ONLY_NOT_REDUCING, "no position on the other side")
            cap = held if held > 0 else -held
            if size > cap:
                size = cap
        may_rest = order_type == LIMIT or order_type == POST_ONLY
        if may_rest and len(account.orders) - (replacing is not None) >= self.max_open_orders:
            return self._reject(c, Reject.TOO_MANY_OPEN_ORDERS, "open order limit reached")

        book = m.book
        if side == BUY:
            crosses = book.ask_prices and book.ask_prices[0] <= limit
        else:
            crosses = book.bid_prices and book.bid_prices[-1] >= limit
        if crosses:
            if order_type == POST_ONLY:
                return self._reject(c, Reject.POST_ONLY_WOULD_CROSS, "post-only order would take liquidity")
            events, filled, notional, taker_fees, stp = self._plan(m, account, side, limit, size, False)
        else:
            events = ()
            filled = notional = taker_fees = 0
            stp = False
        if order_type == FILL_OR_KILL and filled < size:
            return self._reject(c, Reject.FILL_OR_KILL_NOT_FILLED, f"only {filled} of {size} can fill now")
        resting = size - filled if may_rest and not stp else 0

        # margin on the state after the order would execute
        d_ob = d_os = 0
        if replacing is not None:
            if side == BUY:
                d_ob = -replacing.remaining
            else:
                d_os = -replacing.remaining
        if side == BUY:
            d_size = filled
            d_cash = notional + taker_fees
            d_ob += resting
        else:
            d_size = -filled
            d_cash = taker_fees - notional
            d_os += resting
        e, im_post = mg.order_check(account, m, d_size, d_cash, d_ob, d_os)
        if e < im_post and not mg.reduces_risk(account, m, d_size, d_ob, d_os, e):
            return self._reject(c, Reject.INSUFFICIENT_MARGIN, "post-trade equity below initial margin")

        # ---- accepted: from here on nothing can fail (the Accepted update inline: this is the busiest path)
        n = self.ordinal
        self.ordinal = n + 1
        out = self.out
        out.append(Accepted(n, order_id, type(c).__name__))
        if replacing is not None:
            self._remove_order(replacing, CancelReason.MODIFIED)
        if pos is None:
            pos = self._position(account, m)
        if events:
            self._execute(m, account, pos, side, order_id, events, False)
        if resting:
            seq = self.order_seq
            self.order_seq = seq + 1
            order = Order(order_id, account, m, side, order_type, limit, resting, size, seq, bool(reduce_only),
                          client_order_id, expiry)
            # bk.rest(order), inline: the back of its price level
            levels = book.levels[side]
            lvl = levels.get(limit)
            if lvl is None:
                levels[limit] = [deque((order,)), 1]
                insort(book.bid_prices if side == BUY else book.ask_prices, limit)
            else:
                lvl[0].append(order)
                lvl[1] += 1
            if book.bid_prices and book.ask_prices and book.bid_prices[-1] >= book.ask_prices[0]:
                raise EngineInvariantError(f"book of {m.id.hex()} crossed after resting {order_id.hex()}")
            self.orders[order_id] = order
            account.orders[order_id] = order
            if client_order_id != ZERO_ID or expiry:
                self._index_order(order)
            if side == BUY:
                pos.open_buy += resting
            else:
                pos.open_sell += resting
            self.dirty.add(order)
            n = self.ordinal
            self.ordinal = n + 1
            out.append(OrderUpdate(n, order_id, account.trader, account.strategy, m.id, side, limit, resting, OPEN, 0,
                                   client_order_id))
        elif filled == size:
            self._emit(OrderUpdate, order_id, account.trader, account.strategy, m.id, side, limit, 0, FILLED, 0,
                       client_order_id)
        else:
            reason = CancelReason.SELF_TRADE if stp else CancelReason.IOC_REMAINDER
            self._emit(OrderUpdate, order_id, account.trader, account.strategy, m.id, side, limit, 0, CANCELLED,
                       int(reason), client_order_id)

    def _plan(self, m: Market, taker: Account, side: int, limit: int, size: int, liquidation: bool):
        """Walk the opposite side without changing state: [(maker order, size)] (size 0: the maker would fall
        below maintenance margin, so its order is cancelled instead; -1: a reduce-only order with nothing left to
        reduce is cancelled), filled, notional, taker fees, self-trade."""
        book = m.book
        one = m.one
        mark = m.mark
        mmr = m.mmr
        maker_bps = m.maker_fee
        taker_bps = 0 if liquidation else m.taker_fee
        trader = taker.trader
        events = []
        makers: dict = {}
        remaining = size
        notional = 0
        taker_fees = 0
        stp = False
        if side == BUY:
            prices = book.ask_prices
            levels = book.levels[SELL]
            order_of_prices: Iterable[int] = prices
        else:
            prices = book.bid_prices
            levels = book.levels[BUY]
            order_of_prices = reversed(prices)
        for p in order_of_prices:
            if (p > limit) if side == BUY else (p < limit):
                break
            for mo in levels[p][0]:
                r = mo.remaining
                if not r:
                    continue
                ma = mo.account
                if ma.trader == trader:
                    if liquidation:
                        continue
                    stp = True
                    break
                st = makers.get(ma)
                if st is None:
                    e, mm = mg.equity_and_mm(ma)
                    mpos = ma.positions.get(m.id)
                    st = makers[ma] = [e, mm, mpos.size if mpos is not None else 0]
                s0 = st[2]
                q = r if r < remaining else remaining
                if mo.reduce_only:
                    if side == BUY:  # the maker sells: it can only reduce a long
                        reducible = s0 if s0 > 0 else 0
                    else:
                        reducible = -s0 if s0 < 0 else 0
                    if not reducible:
                        events.append((mo, -1))
                        continue
                    if q > reducible:
                        q = reducible
                n = p * q // one
                mfee = -((-n * maker_bps) // BPS)
                if side == BUY:  # the maker sells
                    s1 = s0 - q
                    e1 = st[0] + n
                else:
                    s1 = s0 + q
                    e1 = st[0] - n
                e1 += s1 * mark // one - s0 * mark // one - mfee
                mm1 = st[1] + mg.requirement(s1 if s1 > 0 else -s1, mark, mmr, one) \
                    - mg.requirement(s0 if s0 > 0 else -s0, mark, mmr, one)
                if e1 < mm1:
                    events.append((mo, 0))
                    continue
                st[0] = e1
                st[1] = mm1
                st[2] = s1
                events.append((mo, q))
                if mo.reduce_only and q < r and not s1:
                    events.append((mo, -1))  # the position is closed: the rest could only increase it
                remaining -= q
                notional += n
                taker_fees -= (-n * taker_bps) // BPS
                if not remaining:
                    break
            if stp or not remaining:
                break
        return events, size - remaining, notional, taker_fees, stp

    def _execute(
        self, m: Market, taker: Account, tpos: Position, side: int, taker_order_id: bytes, events, liquidation: bool
    ) -> int:
        """Apply a plan; returns the filled notional.

        The hot loop of every trade: the maker's updates (fill, order, position, strategy) are appended inline with
        a local ordinal counter (written back before any call that emits) rather than through _emit and the
        *_changed helpers; the updates and their order are exactly what those helpers produce."""
        one = m.one
        maker_bps = m.maker_fee
        taker_bps = 0 if liquidation else m.taker_fee
        ledger = self.ledgers[m.token]
        mid = m.id
        dirty_add = self.dirty.add
        orders = self.orders
        held = m.positions
        append = self.out.append
        apply_fill = bk.apply_fill
        unlink = bk.unlink
        t_trader = taker.trader
        t_strategy = taker.strategy
        buy = side == BUY
        total_fees = 0
        total_notional = 0
        n = self.ordinal
        for mo, q in events:
            if q <= 0:
                self.ordinal = n
                self._remove_order(mo, CancelReason.MAKER_MARGIN if not q else CancelReason.REDUCE_ONLY)
                n = self.ordinal
                continue
            ma = mo.account
            mpos = ma.positions[mid]
            p = mo.price
            x = p * q // one
            mfee = -((-x * maker_bps) // BPS)
            tfee = -((-x * taker_bps) // BPS)
            if buy:
                apply_fill(mpos, -q, -x)
                mpos.open_sell -= q
                apply_fill(tpos, q, x)
            else:
                apply_fill(mpos, q, x)
                mpos.open_buy -= q
                apply_fill(tpos, -q, -x)
            ma.collateral -= mfee
            taker.collateral -= tfee
            total_fees += mfee + tfee
            total_notional += x
            r = mo.remaining - q
            mo.remaining = r
            dirty_add(mo)
            m_trader = ma.trader
            m_strategy = ma.strategy
            oid = mo.id
            append(Fill(n, mid, oid, taker_order_id, m_trader, m_strategy, t_trader, t_strategy, side, p, q, mfee,
                        tfee, liquidation))
            cid = mo.client_order_id
            if not r:
                del orders[oid]
                del ma.orders[oid]
                unlink(mo)
                if cid != ZERO_ID:
                    del self.client_ids[m_trader + m_strategy + cid]
                append(OrderUpdate(n + 1, oid, m_trader, m_strategy, mid, mo.side, p, 0, FILLED, 0, cid))
            else:
                append(OrderUpdate(n + 1, oid, m_trader, m_strategy, mid, mo.side, p, r, OPEN, 0, cid))
            # _position_changed(mpos), then _account_changed(ma): both bump the account's version
            ma.version += 2
            dirty_add(mpos)
            size = mpos.size
            if size:
                held[ma.skey] = mpos
            else:
                held.pop(ma.skey, None)
            append(PositionUpdate(n + 2, m_trader, m_strategy, mid, size, mpos.cost, mpos.realized))
            dirty_add(ma)
            if ma.is_fund:
                append(InsuranceUpdate(n + 3, ma.token, ma.collateral))
            else:
                append(StrategyUpdate(n + 3, m_trader, m_strategy, ma.token, ma.collateral))
            n += 4
        self.ordinal = n
        if self.attached:  # a maker's position closed or flipped: its attached triggers go
            for mo, q in events:
                if q > 0:
                    tg.position_changed(self, mo.account.positions[mid])
        if total_notional:
            ledger.fees += total_fees
            self._position_changed(tpos)
            self._account_changed(taker)
            self._fees_changed(ledger)
        return total_notional

    def _remove_order(self, order: Order, reason: CancelReason) -> None:
        a = order.account
        r = order.remaining
        pos = a.positions[order.market.id]
        if order.side == BUY:
            pos.open_buy -= r
        else:
            pos.open_sell -= r
        order.remaining = 0
        del self.orders[order.id]
        del a.orders[order.id]
        cid = order.client_order_id
        if cid != ZERO_ID:
            del self.client_ids[a.trader + a.strategy + cid]
        bk.unlink(order)
        self.dirty.add(order)
        n = self.ordinal
        self.ordinal = n + 1
        self.out.append(OrderUpdate(n, order.id, a.trader, a.strategy, order.market.id, order.side, order.price, 0,
                                    CANCELLED, int(reason), cid))

    def _place_trigger(self, c) -> None:  # c: PlaceTrigger
        tg.place(self, c)

    def _place_twap(self, c) -> None:  # c: PlaceTwap
        tw.place(self, c)

    def _cancel_order(self, c) -> None:  # c: CancelOrder
        order = self.orders.get(c.order_hash) if type(c.order_hash) is bytes else None
        if order is None and type(c.order_hash) is bytes:  # a trigger or a TWAP is cancelled by its id too
            t = self.triggers.get(c.order_hash)
            if t is not None and t.account.trader == c.trader and t.account.strategy == c.strategy \
                    and t.market.id == c.market:
                self._accept(c)
                return tg.cancel(self, t, CancelReason.USER)
            w = self.twaps.get(c.order_hash)
            if w is not None and w.account.trader == c.trader and w.account.strategy == c.strategy \
                    and w.market.id == c.market:
                self._accept(c)
                return tw.cancel(self, w, CancelReason.USER)
        if order is None or order.account.trader != c.trader or order.account.strategy != c.strategy \
                or order.market.id != c.market:
            return self._reject(c, Reject.UNKNOWN_ORDER, "no such open order")
        n = self.ordinal
        self.ordinal = n + 1
        self.out.append(Accepted(n, c.request_id, "CancelOrder"))
        self._remove_order(order, CancelReason.USER)

    def _cancel_all(self, c) -> None:  # c: CancelAll
        t = self.traders.get(c.trader) if type(c.trader) is bytes else None
        if t is None or c.strategy not in t.strategies:
            return self._reject(c, Reject.UNKNOWN_STRATEGY, "no such strategy")
        if c.market != ZERO_ID and c.market not in self.markets:
            return self._reject(c, Reject.UNKNOWN_MARKET, "market not listed")
        self._accept(c)
        self._cancel_scope(c.trader, [c.strategy], c.market, CancelReason.USER)

    def _cancel_scope(self, trader: bytes, strategies, market: bytes, reason: CancelReason) -> None:
        """Every open order, then every trigger, then every TWAP of the trader's `strategies` in `market` (zero: all),
        oldest first: what CancelAll and a scheduled cancel remove."""
        doomed: list = []
        pending = []
        running = []
        for strategy in strategies:
            for token in sorted(self.ledgers):
                a = self.accounts.get(trader + strategy + token)
                if a is not None:
                    doomed.extend(o for o in a.orders.values() if market == ZERO_ID or o.market.id == market)
                    if self.triggers:
                        pending.extend(tg.of_account(self, a, market))
                    if self.twaps:
                        running.extend(tw.of_account(self, a, market))
        doomed.sort(key=_by_seq)
        for order in doomed:
            self._remove_order(order, reason)
        pending.sort(key=_by_seq)
        for t in pending:
            if t.id in self.triggers:  # not cancelled meanwhile (an attached one whose position closed)
                tg.cancel(self, t, reason)
        running.sort(key=_by_seq)
        for w in running:
            tw.cancel(self, w, reason)

    def _batch(self, c) -> None:  # c: Batch
        actions = c.actions
        if type(actions) is not tuple or not 0 < len(actions) <= pr.MAX_BATCH_ACTIONS:
            return self._reject(c, Reject.BAD_BATCH, f"a batch carries 1..{pr.MAX_BATCH_ACTIONS} actions")
        if c.atomic:
            return self._atomic_batch(c)
        self._accept(c)
        for i, action in enumerate(actions):
            command = action_command(c, i, action)
            if command is None:
                self._rejected(pr.batch_action_id(c.request_id, i), "Action", Reject.MALFORMED, "unknown action kind")
                continue
            self._handle(self._handlers[type(command)], command)

    def _atomic_batch(self, c) -> None:  # c: Batch
        """All the actions or none (docs/engine.md §3.1). They cannot trade — places are post-only, cancels and
        modifies name open orders (a modify a post-only one) — so what they change is the strategy's own resting
        orders and the counters: on the first rejection that is put back exactly (orders, book levels in time
        priority, open sizes, client ids, expiries, ordinal, order seq) and the batch is rejected as a whole."""
        for i, action in enumerate(c.actions):
            if action.kind == pr.ActionKind.PLACE and action.order_type != POST_ONLY:
                return self._reject(c, Reject.BAD_BATCH, f"action {i}: an atomic batch places post-only orders only")
            if action.kind not in (pr.ActionKind.PLACE, pr.ActionKind.CANCEL, pr.ActionKind.MODIFY):
                return self._reject(c, Reject.MALFORMED, f"action {i}: unknown action kind")
        accounts = [a for a in (self.accounts.get(c.trader + c.strategy + token) for token in sorted(self.ledgers))
                    if a is not None]
        before = {o.id: (o, o.remaining) for a in accounts for o in a.orders.values()}
        ordinal, order_seq, start = self.ordinal, self.order_seq, len(self.out)
        self._accept(c)
        for i, action in enumerate(c.actions):
            if action.kind != pr.ActionKind.PLACE:
                target = self.orders.get(action.order_hash)
                mine = target is not None and target.account.trader == c.trader and target.account.strategy == c.strategy
                # (mine implies target is not None; spelled out for the type checker of the compiled build)
                modifies_other = (
                    target is not None and action.kind == pr.ActionKind.MODIFY and target.order_type != POST_ONLY
                )
                if not mine or modifies_other:
                    why = "no such open order" if not mine else "an atomic batch modifies post-only orders only"
                    return self._undo_atomic(c, accounts, before, ordinal, order_seq, start, i, why)
            command = action_command(c, i, action)
            at = len(self.out)
            self._handle(self._handlers[type(command)], command)
            verdict = self.out[at]
            if type(verdict) is Rejected:
                return self._undo_atomic(c, accounts, before, ordinal, order_seq, start, i, verdict.detail)

    def _undo_atomic(self, c, accounts, before, ordinal, order_seq, start, index, why) -> None:
        # `accounts` were taken before the actions ran: none of them can open an account (an order needs one)
        now = {o.id: o for a in accounts for o in a.orders.values()}
        for oid, o in now.items():  # placed by the batch: gone again
            if oid not in before:
                pos = o.account.positions[o.market.id]
                if o.side == BUY:
                    pos.open_buy -= o.remaining
                else:
                    pos.open_sell -= o.remaining
                o.remaining = 0
                del self.orders[oid]
                del o.account.orders[oid]
                if o.client_order_id != ZERO_ID:
                    self.client_ids.pop(o.account.trader + o.account.strategy + o.client_order_id, None)
                bk.unlink(o)
        levels = set()
        for oid, (o, remaining) in before.items():  # cancelled or replaced by the batch: back, same place in time
            if oid in now:
                continue
            o.remaining = remaining
            self.orders[oid] = o
            o.account.orders[oid] = o
            pos = o.account.positions[o.market.id]
            if o.side == BUY:
                pos.open_buy += remaining
            else:
                pos.open_sell += remaining
            if o.client_order_id != ZERO_ID:
                self.client_ids[o.account.trader + o.account.strategy + o.client_order_id] = oid
            if o.expiry:  # its heap entry may have gone in a compaction while it was out: a second one is harmless
                heapq.heappush(self._expiring, (o.expiry, o.seq, oid))
            levels.add((o.market, o.side, o.price))
        for m, side, price in levels:
            book = m.book
            table = book.levels[side]
            lvl = table.get(price)
            resting = [o for o in (lvl[0] if lvl is not None else ()) if o.remaining]
            resting.extend(o for o, _ in before.values() if o.market is m and o.side == side and o.price == price
                           and o.remaining and o not in resting)
            resting.sort(key=_by_seq)
            if lvl is None:
                insort(book.bid_prices if side == BUY else book.ask_prices, price)
            table[price] = [deque(resting), len(resting)]
        self.ordinal = ordinal
        self.order_seq = order_seq
        del self.out[start:]
        self._reject(c, Reject.ATOMIC_BATCH_FAILED, f"action {index}: {why}; no action applied")

    # ------------------------------------------------------------------------------------------ agents

    def _approve_agent(self, c) -> None:  # c: ApproveAgent
        if type(c.agent) is not bytes or len(c.agent) != 20 or c.agent in (ZERO_ADDRESS, c.trader):
            return self._reject(c, Reject.BAD_AGENT, "agent must be a non-zero address other than the trader")
        if c.scope != pr.AgentScope.TRADE:
            return self._reject(c, Reject.BAD_AGENT, "scope must be 1 (trade)")
        if type(c.expiry) is not int or not self.time < c.expiry < 2**64:
            return self._reject(c, Reject.BAD_AGENT, f"expiry must be after the sequenced time {self.time}")
        key = c.trader + c.agent + c.strategy
        held = self.agents_of.get(c.trader, set())
        live = [k for k in held if k != key and self.agents[k].expiry > self.time]
        if len(live) >= MAX_AGENTS:
            return self._reject(c, Reject.TOO_MANY_AGENTS, f"at most {MAX_AGENTS} live agent approvals")
        self._accept(c)
        for k in sorted(held):  # expired approvals make room (sorted: the same updates on every node)
            if k != key and self.agents[k].expiry <= self.time:
                self._end_agent(self.agents[k])
        agent = self.agents.get(key)
        if agent is None:
            agent = self.agents[key] = Agent(c.trader, c.agent, c.strategy, c.scope, self.time, c.expiry)
            self.agents_of.setdefault(c.trader, set()).add(key)
        else:  # approved again: a new start (signatures from before it stay dead) and the new expiry
            agent.scope, agent.valid_from, agent.expiry = c.scope, self.time, c.expiry
        self.dirty.add(agent)
        self._emit(AgentUpdate, c.trader, c.agent, c.strategy, c.scope, agent.valid_from, c.expiry, True)

    def _revoke_agent(self, c) -> None:  # c: RevokeAgent
        agent = self.agents.get(c.trader + c.agent + c.strategy) if type(c.agent) is bytes else None
        if agent is None:
            return self._reject(c, Reject.UNKNOWN_AGENT, "no such agent approval for this strategy")
        self._accept(c)
        self._end_agent(agent)

    def _end_agent(self, agent: Agent) -> None:
        agent.gone = True
        del self.agents[agent.skey]
        keys = self.agents_of[agent.trader]
        keys.discard(agent.skey)
        if not keys:
            del self.agents_of[agent.trader]
        self.dirty.add(agent)
        self._emit(AgentUpdate, agent.trader, agent.agent, agent.strategy, agent.scope, agent.valid_from,
                   agent.expiry, False)

    # ------------------------------------------------------------------------------------------ scheduled cancels

    def _schedule_cancel(self, c) -> None:  # c: ScheduleCancel
        if type(c.market) is not bytes or len(c.market) != 32 or type(c.time) is not int or not 0 <= c.time < 2**64:
            return self._reject(c, Reject.MALFORMED, "market is a bytes32, time a uint64")
        key = c.trader + c.strategy + c.market
        held = self.schedules.get(key)
        if c.time:
            if c.time <= self.time:
                return self._reject(c, Reject.BAD_SCHEDULE, f"time must be after the sequenced time {self.time}")
            if held is None and self.schedules_of.get(c.trader, 0) >= MAX_SCHEDULES:
                return self._reject(c, Reject.TOO_MANY_SCHEDULES, f"at most {MAX_SCHEDULES} scheduled cancels")
        self._accept(c)
        if not c.time:
            if held is not None:
                self._end_schedule(held, SCHEDULE_CLEARED)
            return
        if held is None:
            held = self.schedules[key] = Schedule(c.trader, c.strategy, c.market, c.time)
            self.schedules_of[c.trader] = self.schedules_of.get(c.trader, 0) + 1
        held.time = c.time
        heapq.heappush(self._due, (c.time, key))
        if len(self._due) > 4 * len(self.schedules) + 1024:  # moved schedules leave stale entries: drop them
            self._due = [(x.time, k) for k, x in self.schedules.items()]
            heapq.heapify(self._due)
        self.dirty.add(held)
        self._emit(CancelScheduled, c.trader, c.strategy, c.market, c.time, SCHEDULE_SET)

    def _end_schedule(self, s: Schedule, status: int) -> None:
        s.gone = True
        del self.schedules[s.skey]
        left = self.schedules_of[s.trader] - 1
        if left:
            self.schedules_of[s.trader] = left
        else:
            del self.schedules_of[s.trader]
        self.dirty.add(s)
        self._emit(CancelScheduled, s.trader, s.strategy, s.market, s.time, status)

    def _fire_schedules(self) -> None:
        """Every scheduled cancel due at the new time fires, by (time, key): its matching open orders are cancelled
        oldest first (reason SCHEDULED)."""
        due = self._due
        while due and due[0][0] <= self.time:
            when, key = heapq.heappop(due)
            s = self.schedules.get(key)
            if s is None or s.time != when:
                continue  # cleared or moved since it was pushed
            self._end_schedule(s, SCHEDULE_FIRED)
            t = self.traders.get(s.trader)
            strategies = sorted(t.strategies) if t is not None and s.strategy == ZERO_ID else [s.strategy]
            self._cancel_scope(s.trader, strategies, s.market, CancelReason.SCHEDULED)

    def agent_problem(self, trader: bytes, agent: bytes, strategy: bytes, timestamp: int) -> str | None:
        """Why `agent` may not sign a trading request of `trader`'s for `strategy` with this timestamp now, or None
        (docs/protocol.md §7.4): an approval for the strategy or for every strategy, not expired by the sequenced
        time, and the request signed no earlier than the approval (a signature from before a revocation and a
        re-approval stays dead)."""
        found = self.agents.get(trader + agent + strategy) or self.agents.get(trader + agent + ZERO_ID)
        if found is None:  # neither the trader nor its agent: what a forged request is
            return "signer_mismatch"
        if found.expiry <= self.time:
            return "agent_expired"
        if timestamp < found.valid_from:
            return "agent_request_predates_approval"
        return None

    # ------------------------------------------------------------------------------------------ strategies, money

    def _create_strategy(self, c) -> None:  # c: CreateStrategy
        if type(c.trader) is not bytes or len(c.trader) != 20 or c.trader == ZERO_ADDRESS:
            return self._reject(c, Reject.MALFORMED, "trader is a non-zero 20-byte address")
        if type(c.strategy) is not bytes or len(c.strategy) != 32 or c.strategy == ZERO_ID:
            return self._reject(c, Reject.MALFORMED, "strategy is a non-zero bytes32")
        t = self.traders.get(c.trader)
        if t is not None and c.strategy in t.strategies:
            return self._reject(c, Reject.STRATEGY_EXISTS, "strategy exists")
        if t is not None and t.created >= self.max_strategies:
            return self._reject(c, Reject.TOO_MANY_STRATEGIES, "strategy limit reached")
        self._accept(c)
        self._account_changed(self._account_for(c.trader, c.strategy, self.default_token))
        t = self.traders[c.trader]
        t.created += 1
        self.dirty.add(t)

    def _free_collateral(self, a) -> int:
        return mg.free_collateral(a.collateral, mg.unrealized(a), mg.initial_requirement(a))

    def _transfer(self, c) -> None:  # c: Transfer
        if type(c.amount) is not int or not 0 < c.amount <= MAX_QUANTITY:
            return self._reject(c, Reject.BAD_AMOUNT, "amount must be positive")
        if c.token not in self.ledgers:
            return self._reject(c, Reject.UNKNOWN_TOKEN, "token not listed")
        if type(c.to_strategy) is not bytes or len(c.to_strategy) != 32 or c.to_strategy == c.strategy:
            return self._reject(c, Reject.MALFORMED, "to_strategy is another bytes32 strategy")
        source = self.accounts.get(c.trader + c.strategy + c.token)
        if source is None:
            return self._reject(c, Reject.UNKNOWN_STRATEGY, "strategy has no account in this token")
        if c.to_strategy not in self.traders[c.trader].strategies:
            return self._reject(c, Reject.UNKNOWN_STRATEGY, "no such target strategy (create it first)")
        free = self._free_collateral(source)
        if c.amount > free:
            return self._reject(c, Reject.INSUFFICIENT_FREE_COLLATERAL, f"at most {max(free, 0)} is free")
        self._accept(c)
        target = self._account_for(c.trader, c.to_strategy, c.token)
        source.collateral -= c.amount
        target.collateral += c.amount
        self._emit(Transferred, c.trader, c.strategy, c.to_strategy, c.token, c.amount)
        self._account_changed(source)
        self._account_changed(target)

    def _withdraw(self, c) -> None:  # c: WithdrawIntent
        if type(c.amount) is not int or not 0 < c.amount <= MAX_QUANTITY:
            return self._reject(c, Reject.BAD_AMOUNT, "amount must be positive")
        if c.token not in self.ledgers:
            return self._reject(c, Reject.UNKNOWN_TOKEN, "token not listed")
        a = self.accounts.get(c.trader + c.strategy + c.token) if type(c.trader) is bytes \
            and type(c.strategy) is bytes else None
        if a is None:
            return self._reject(c, Reject.UNKNOWN_STRATEGY, "strategy has no account in this token")
        free = self._free_collateral(a)
        if c.amount > free:
            return self._reject(c, Reject.INSUFFICIENT_FREE_COLLATERAL, f"at most {max(free, 0)} is free")
        self._accept(c)
        a.collateral -= c.amount
        self._account_changed(a)
        key = c.trader + c.token
        leaf = self.withdrawals.get(key)
        if leaf is None:
            leaf = self.withdrawals[key] = PairLeaf(K_WITHDRAWAL, c.trader, c.token)
        leaf.amount += c.amount
        ledger = self.ledgers[c.token]
        ledger.withdrawable += c.amount
        self.dirty.update((leaf, ledger))
        self._emit(WithdrawalUpdate, c.trader, c.strategy, c.token, c.amount, leaf.amount)

    def _chain_block(self, c) -> None:  # c: ChainBlock
        if type(c.block_number) is not int or c.block_number <= self.block_number:
            return self._reject(c, Reject.BLOCK_NOT_NEWER, f"block must be after {self.block_number}")
        if type(c.block_hash) is not bytes or len(c.block_hash) != 32:
            return self._reject(c, Reject.MALFORMED, "block hash is 32 bytes")
        expected = self.deposit_seq + 1
        for d in c.deposits:
            if type(d.seq) is not int or d.seq < expected:
                return self._reject(c, Reject.DEPOSIT_REPEATED, f"deposit {d.seq} already applied; next is "
                                    f"{expected}")
            if d.seq > expected:
                return self._reject(c, Reject.DEPOSIT_SEQUENCE_GAP, f"deposit {d.seq} skips {expected}")
            if type(d.token) is not bytes or len(d.token) != 20:
                return self._reject(c, Reject.MALFORMED, f"deposit {d.seq}: bad token")
            if type(d.amount) is not int or not 0 < d.amount <= MAX_QUANTITY:
                return self._reject(c, Reject.BAD_AMOUNT, f"deposit {d.seq}: amount must be positive")
            if type(d.trader) is not bytes or len(d.trader) != 20 or d.trader == ZERO_ADDRESS:
                return self._reject(c, Reject.MALFORMED, f"deposit {d.seq}: bad trader")
            if type(d.strategy) is not bytes or len(d.strategy) != 32:
                return self._reject(c, Reject.MALFORMED, f"deposit {d.seq}: bad strategy")
            expected += 1
        problem = self._forced_problem(c.forced, expected - 1)
        if problem is not None:
            return self._reject(c, *problem)
        self._accept(c)
        # the inbox order: each forced request after the deposits logged before it (contracts/modules/inbox.vy)
        forced = iter(c.forced)
        pending = next(forced, None)
        for d in c.deposits:
            while pending is not None and pending.deposits_before < d.seq:
                self._take_forced(pending)
                pending = next(forced, None)
            self._take_deposit(d)
        while pending is not None:
            self._take_forced(pending)
            pending = next(forced, None)
        self.block_number = c.block_number
        self.block_hash = c.block_hash
        self._emit(BlockApplied, c.block_number, c.block_hash, self.deposit_seq)

    def _forced_problem(self, forced, last_deposit: int):
        """Why a block's forced requests cannot be taken as listed, or None: seqs consecutive, each placed among
        this block's deposits, well-typed. Their contents are judged when each is applied."""
        expected = self.forced_seq + 1
        placed = self.deposit_seq
        for f in forced:
            if type(f) is not ForcedRequest or type(f.seq) is not int or f.seq != expected:
                return Reject.FORCED_SEQUENCE, f"forced request {getattr(f, 'seq', '?')} is not the next ({expected})"
            if type(f.deposits_before) is not int or not placed <= f.deposits_before <= last_deposit:
                return Reject.MALFORMED, f"forced request {f.seq}: placed after deposit {f.deposits_before}, " \
                    f"outside {placed}..{last_deposit}"
            if type(f.trader) is not bytes or len(f.trader) != 20 or f.trader == ZERO_ADDRESS:
                return Reject.MALFORMED, f"forced request {f.seq}: bad trader"
            if type(f.request_type) is not int or not 0 <= f.request_type < 256:
                return Reject.MALFORMED, f"forced request {f.seq}: bad request type"
            if not 0 < len(f.fields) <= ib.MAX_FIELDS_WORDS or any(
                type(w.value) is not bytes or len(w.value) != 32 for w in f.fields
            ):
                return Reject.MALFORMED, f"forced request {f.seq}: fields are 1..{ib.MAX_FIELDS_WORDS} words"
            placed = f.deposits_before
            expected += 1
        return None

    def _take_deposit(self, d) -> None:
        self.inbox_acc = ib.fold(self.inbox_acc, ib.deposit_leaf(d.seq, d.trader, d.strategy, d.token, d.amount))
        self.deposit_seq = d.seq
        strategy = d.strategy if d.strategy != ZERO_ID else MAIN_STRATEGY
        if d.token not in self.ledgers:
            # allow-listed on-chain before the engine listed it: must not stall everyone's deposits behind it
            self._emit(DepositIgnored, d.seq, d.trader, strategy, d.token, d.amount)
            return
        a = self._account_for(d.trader, strategy, d.token)
        a.collateral += d.amount
        ledger = self.ledgers[d.token]
        ledger.deposited += d.amount
        # the pair's BALANCE leaf records every credited deposit, so the escape hatch can return the later ones
        pair = d.trader + d.token
        leaf = self.balances.get(pair)
        if leaf is None:
            leaf = self.balances[pair] = PairLeaf(K_BALANCE, d.trader, d.token)
        leaf.deposited += d.amount
        self.dirty.update((ledger, leaf))
        self._emit(DepositCredited, d.seq, d.trader, strategy, d.token, d.amount)
        self._account_changed(a)

    def _take_forced(self, f: ForcedRequest) -> None:
        """Apply a forced request exactly as the same request signed by its trader: its own Accepted or Rejected
        and effects, then ForcedRequestApplied. Taken (counted, folded) whatever the outcome."""
        fields = f.field_bytes()
        self.inbox_acc = ib.fold(self.inbox_acc, ib.forced_leaf(f.seq, f.trader, f.request_type, fields))
        self.forced_seq = f.seq
        rid = f.request_id()
        start = len(self.out)
        try:
            request = pr.decode_forced_fields(f.request_type, f.trader, fields)
            request.validate()
        except (ProtocolError, pr.RequestRejected) as exc:
            known: Any = pr.REQUEST_TYPES_BY_ID.get(f.request_type)  # a request class (PRIMARY_TYPE) or None
            name = known.PRIMARY_TYPE if known is not None else "ForcedRequest"
            self._rejected(rid, name, Reject.MALFORMED, f"forced request {f.seq}: {exc}")
        else:
            command = from_request(request, rid)
            self._handle(self._handlers[type(command)], command)
        verdict = self.out[start]
        reason, detail = (verdict.reason, verdict.detail) if type(verdict) is Rejected else (0, "")
        self._emit(ForcedRequestApplied, f.seq, f.trader, f.request_type, rid, reason, detail)

    def inbox_cursor(self) -> ib.InboxCursor:
        """How much of the L1 inbox this state has taken (what a checkpoint of it states)."""
        return ib.InboxCursor(self.deposit_seq, self.forced_seq, self.inbox_acc)

    # ------------------------------------------------------------------------------------------ prices, time

    def _index_prices(self, c) -> None:  # c: IndexPrices
        if not c.prices:
            return self._reject(c, Reject.MALFORMED, "no prices")
        seen = set()
        for ip in c.prices:
            if ip.market not in self.markets:
                return self._reject(c, Reject.UNKNOWN_MARKET, "market not listed")
            if ip.market in seen:
                return self._reject(c, Reject.MALFORMED, "a market appears twice")
            seen.add(ip.market)
            if type(ip.price) is not int or not 0 < ip.price <= MAX_QUANTITY:
                return self._reject(c, Reject.PRICE_NOT_POSITIVE, "index price must be positive")
        self._accept(c)
        touched = []
        for ip in c.prices:
            m = self.markets[ip.market]
            m.index = ip.price
            m.mark = mark_price(m)
            m.price_time = self.time
            self.dirty.add(m.price_view)
            self._emit(PriceUpdate, m.id, m.index, m.mark)
            touched.append(m)
        if self.trigger_heaps:
            tg.fire_due(self, touched)
        risk.sweep(self, touched)

    def _advance_time(self, c) -> None:  # c: AdvanceTime
        if type(c.time_ms) is not int or c.time_ms <= self.time or c.time_ms >= 2**64:
            return self._reject(c, Reject.TIME_NOT_NEWER, f"time must be after {self.time}")
        self._accept(c)
        first = not self.time
        self.time = c.time_ms
        self._emit(TimeAdvanced, c.time_ms)
        if first:  # the clock starts (genesis time is 0): funding is owed from now on, not from 1970
            for mid in sorted(self.markets):
                m = self.markets[mid]
                m.next_funding = (c.time_ms // m.funding_interval + 1) * m.funding_interval
                self.dirty.add(m.funding_view)
        if self._due:
            self._fire_schedules()
        if self._expiring:
            self._expire_orders()
        if self.twap_due:
            tw.run_due(self)
        paid = [m for mid, m in sorted(self.markets.items()) if m.next_funding <= c.time_ms]
        for m in paid:
            risk.pay_funding(self, m)
        if paid:
            risk.sweep(self, paid)

    # ------------------------------------------------------------------------------------------ listings

    def _list_token(self, c) -> None:  # c: ListToken
        if type(c.token) is not bytes or len(c.token) != 20 or c.token == ZERO_ADDRESS:
            return self._reject(c, Reject.MALFORMED, "token is a non-zero 20-byte address")
        if c.token in self.ledgers:
            return self._reject(c, Reject.TOKEN_EXISTS, "token already listed")
        self._accept(c)
        self._add_token(c.token)
        self._emit(TokenListed, c.token)

    def _fund_insurance(self, c) -> None:  # c: FundInsurance
        ledger = self.ledgers.get(c.token)
        if ledger is None:
            return self._reject(c, Reject.UNKNOWN_TOKEN, "token not listed")
        if type(c.amount) is not int or not 0 < c.amount <= ledger.fees:
            return self._reject(c, Reject.BAD_AMOUNT, f"amount must be in 1..{ledger.fees} (the collected fees)")
        self._accept(c)
        ledger.fees -= c.amount
        ledger.fund.collateral += c.amount
        self._fees_changed(ledger)
        self._account_changed(ledger.fund)

    def _list_market(self, c) -> None:  # c: ListMarket
        problem = market_params_problem(c.params, set(self.ledgers))
        if problem:
            return self._reject(c, Reject.BAD_MARKET_PARAMS, problem)
        if c.params.market in self.markets:
            return self._reject(c, Reject.MARKET_EXISTS, "market already listed")
        self._accept(c)
        self._add_market(c.params)
        self._emit(MarketUpdate, c.params.market, True)

    def _update_market(self, c) -> None:  # c: UpdateMarket
        p = c.params
        m = self.markets.get(p.market) if isinstance(p, type(c.params)) else None
        if m is None:
            return self._reject(c, Reject.UNKNOWN_MARKET, "market not listed")
        problem = market_params_problem(p, set(self.ledgers))
        if problem:
            return self._reject(c, Reject.BAD_MARKET_PARAMS, problem)
        if (p.token, p.tick, p.lot, p.size_decimals) != (m.token, m.tick, m.lot, m.size_decimals):
            return self._reject(c, Reject.BAD_MARKET_PARAMS, "token, tick, lot and size_decimals never change")
        self._accept(c)
        interval_changed = p.funding_interval_ms != m.funding_interval
        m.set_params(p)
        for pos in m.positions.values():
            pos.safe_version = -1  # the sweep cache assumed the old maintenance ratio
        if interval_changed:
            m.next_funding = (self.time // m.funding_interval + 1) * m.funding_interval
            self.dirty.add(m.funding_view)
        self.dirty.add(m)
        self._emit(MarketUpdate, m.id, False)
        if m.mark:  # margin ratios may have risen
            risk.sweep(self, [m])

    # ------------------------------------------------------------------------------------------ epochs

    def _advance_epoch(self, c) -> None:  # c: AdvanceEpoch
        if type(c.epoch) is not int or c.epoch != self.epoch + 1:
            return self._reject(c, Reject.EPOCH_NOT_NEXT, f"next epoch is {self.epoch + 1}")
        imbalance = {token: v for token, v in self.ledger_imbalance().items() if v}
        if imbalance:
            raise EngineInvariantError(f"collateral not conserved before freezing epoch {c.epoch}: {imbalance}")
        self._accept(c)
        self._refresh_balances()
        self.epoch = c.epoch
        self.flush()  # what changed before the freeze goes to the previous epoch's undo log
        root = self.tree.root()
        self._undo_open = self._undo[c.epoch] = {}
        for old in [e for e in self._undo if e <= c.epoch - self.epochs_retained]:
            del self._undo[old]
            self._epoch_tree_cache.pop(old, None)
        record = EpochRecord(c.epoch, root, self.ordinal, self.time)
        self.epochs[c.epoch] = record
        self.dirty.add(record)
        self._emit(EpochFrozen, c.epoch, root)

    def _refresh_balances(self) -> None:
        """BALANCE(trader, token) = sum over the trader's strategies in the token of max(0, equity at mark), scaled
        down pro rata (floor) by the insurance fund's bad debt when its equity is negative (docs/engine.md)."""
        totals: dict[bytes, int] = {}
        debts: dict[bytes, int] = {}
        for a in self.accounts.values():
            e = mg.equity(a)
            if a.is_fund:
                debts[a.token] = -e if e < 0 else 0
                continue
            key = a.trader + a.token
            totals[key] = totals.get(key, 0) + (e if e > 0 else 0)
        per_token: dict[bytes, int] = {}
        for key, amount in totals.items():
            per_token[key[20:]] = per_token.get(key[20:], 0) + amount
        for key, amount in totals.items():
            token = key[20:]
            debt = debts.get(token, 0)
            if debt:
                whole = per_token[token]
                amount = amount * (whole - debt) // whole if whole > debt else 0
            leaf = self.balances.get(key)
            if leaf is None:
                if not amount:
                    continue
                leaf = self.balances[key] = PairLeaf(K_BALANCE, key[:20], token)
            if leaf.amount != amount:
                leaf.amount = amount
                self.dirty.add(leaf)

    def frozen_root(self, epoch: int) -> bytes:
        record = self.epochs.get(epoch)
        if record is None:
            raise UnknownEpochError(f"epoch {epoch} was never frozen")
        return record.root

    def epoch_proofs(self, epoch: int, trader: bytes, token: bytes) -> dict:
        """Proofs of the trader's WITHDRAWAL and BALANCE leaves against the frozen root of `epoch`
        (docs/engine.md, "Epochs and proofs")."""
        tree = self.epoch_tree(epoch)
        wkey = key_of(K_WITHDRAWAL, address_word(trader) + address_word(token))
        bkey = key_of(K_BALANCE, address_word(trader) + address_word(token))
        return {
            "epoch": epoch,
            "root": self.epochs[epoch].root,
            "withdrawal": prove(tree, wkey),
            "withdrawal_value": tree.get(wkey),
            "balance": prove(tree, bkey),
            "balance_value": tree.get(bkey),
        }

    @property
    def retained_epochs(self) -> list[int]:
        """The frozen epochs whose trees can still prove leaves (the last `epochs_retained`), oldest first."""
        return sorted(self._undo)

    def epoch_tree(self, epoch: int):
        """The state tree as `epoch` froze it: today's items with the undo logs of `epoch` and every later epoch
        applied, newest first; rebuilt once and cached (a frozen epoch never changes)."""
        tree = self._epoch_tree_cache.get(epoch)
        if tree is None:
            build = self.epoch_tree_builder(epoch)
            tree = self.keep_epoch_tree(epoch, build())
        return tree

    def epoch_tree_builder(self, epoch: int):
        """What `epoch_tree` does in two steps: the inputs taken now (one copy of today's items and of the undo logs
        of `epoch` and later), and a function that rebuilds the tree from them, on any thread (the node builds it
        off its event loop); `keep_epoch_tree` then caches it. UnknownEpochError if `epoch` is not retained."""
        if epoch not in self._undo:
            raise UnknownEpochError(f"epoch {epoch} is not retained (the last {self.epochs_retained} are)")
        self.flush()
        items = self.tree.copy_items()
        logs = [dict(self._undo[e]) for e in sorted((e for e in self._undo if e >= epoch), reverse=True)]

        def build():
            for log in logs:  # newest first
                for key, value in log.items():
                    if value is None:
                        items.pop(key, None)
                    else:
                        items[key] = value
            return tree_from_items(items)  # the tree sorts the keys itself

        return build

    def keep_epoch_tree(self, epoch: int, tree):
        """Cache a rebuilt epoch tree once it is proven to have the epoch's frozen root."""
        if tree.root() != self.epochs[epoch].root:
            raise EngineInvariantError(f"epoch {epoch} rebuilt from its undo logs does not have its frozen root")
        if epoch in self._undo:
            self._epoch_tree_cache[epoch] = tree
        return tree

    def has_epoch_tree(self, epoch: int) -> bool:
        return epoch in self._epoch_tree_cache

    # ------------------------------------------------------------------------------------------ tree

    def system_item(self) -> tuple[bytes, bytes]:
        return _SYSTEM_KEY, value_of(
            K_SYSTEM,
            uint_word(SYSTEM_CURSORS) + uint_word(self.deposit_seq) + uint_word(self.block_number) + self.block_hash
            + uint_word(self.time) + uint_word(self.epoch) + uint_word(self.ordinal) + uint_word(self.order_seq)
            + address_word(self.default_token) + uint_word(self.max_open_orders) + uint_word(self.max_strategies)
            + uint_word(self.epochs_retained) + uint_word(self.forced_seq) + self.inbox_acc,
        )

    def flush(self) -> None:
        """Write the dirty items to the tree: deletions first, so a key reused in the same window ends present."""
        tree = self.tree
        undo = self._undo_open
        puts = []
        for obj in self.dirty:
            if type(obj) is Order and not obj.remaining:
                # a filled or cancelled order: delete it if a root saw it, else it never reaches the tree (no key,
                # no encoding; about one dirty order in ten is placed and gone between two roots)
                if obj.in_tree:
                    gone = obj._key  # set by the item() that put the order in the tree
                    if gone is None:
                        raise EngineInvariantError(f"order {obj.id.hex()} is in the tree without a key")
                    if undo is not None and gone not in undo:
                        undo[gone] = tree.get(gone)
                    tree.delete(gone)
                    obj.in_tree = False
                continue
            key, value = obj.item()
            if value is None:
                if obj.in_tree:
                    if undo is not None and key not in undo:
                        undo[key] = tree.get(key)
                    tree.delete(key)
                    obj.in_tree = False
            else:
                puts.append((obj, key, value))
        put = tree.put
        if undo is not None:
            get = tree.get
            for _, key, _ in puts:
                if key not in undo:
                    undo[key] = get(key)
            if _SYSTEM_KEY not in undo:
                undo[_SYSTEM_KEY] = get(_SYSTEM_KEY)
        for obj, key, value in puts:
            put(key, value)
            obj.in_tree = True
        self.dirty.clear()
        key, value = self.system_item()
        put(key, value)

    def all_items(self) -> list[tuple[bytes, bytes]]:
        """Every item of the state, sorted by key (what the tree holds after a flush)."""
        self.flush()
        objs: list = []
        objs.extend(self.markets.values())
        for m in self.markets.values():
            objs.append(m.price_view)
            objs.append(m.funding_view)
            objs.extend(m.positions.values())
        for ledger in self.ledgers.values():
            objs.extend((ledger, ledger.fee_view))
        objs.extend(self.accounts.values())
        objs.extend(self.traders.values())
        objs.extend(self.orders.values())
        objs.extend(self.withdrawals.values())
        objs.extend(self.balances.values())
        objs.extend(self.epochs.values())
        objs.extend(self.agents.values())
        objs.extend(self.schedules.values())
        objs.extend(self.triggers.values())
        objs.extend(self.twaps.values())
        items = [self.system_item()]
        for obj in objs:
            key, value = obj.item()
            if value is not None:
                items.append((key, value))
        items.sort()
        return items

    def snapshot(self) -> bytes:
        return snapshot_codec.take(self)

    def capture(self):
        """`snapshot()` in two steps: the state taken now (cheap: flush, copy the item dict), and a function that
        encodes it later, on any thread (docs/engine.md, "Snapshots")."""
        return snapshot_codec.capture(self)

    @classmethod
    def restore(cls, data: bytes) -> "Engine":
        return snapshot_codec.restore(cls, data)


_TRADER_COMMANDS = frozenset((
    PlaceOrder, CancelOrder, CancelAll, ModifyOrder, WithdrawIntent, CreateStrategy, Batch, ApproveAgent, RevokeAgent,
    ScheduleCancel, Transfer, PlaceTrigger, PlaceTwap,
))
_VERDICTS = (Accepted, Rejected)  # what every command's first update is


def _by_seq(order):
    return order.seq


def mark_price(m) -> int:
    """index + clamp(mid - index, ±index * premium_cap); the index alone while the book is one-sided."""
    index = m.index
    book = m.book
    if not book.bid_prices or not book.ask_prices:
        return index
    mid = (book.bid_prices[-1] + book.ask_prices[0]) // 2
    cap = index * m.premium_cap // BPS
    premium = mid - index
    if premium > cap:
        premium = cap
    elif premium < -cap:
        premium = -cap
    return index + premium


__all__ = ["Engine", "mark_price"]
