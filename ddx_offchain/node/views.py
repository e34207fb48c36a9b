"""Read-only views of the live engine state that the API serves, as typed values (the API renders them as JSON).

One implementation of each: the order book, a trader's accounts (with the margin figures of docs/engine.md), a
market's parameters and state, and the proofs of a trader's two leaves against a frozen epoch. Nothing here
changes state; every lookup is by key (a trader's strategies x listed tokens), never a scan of every account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..engine.commands import BUY, SELL
from ..engine.engine import Engine
from ..engine.errors import UnknownEpochError
from ..engine.risk import funding_per_unit
from ..errors import DdxError
from ..protocol.items import decode_balance_value, decode_withdrawal_value
from ..protocol.proof import InclusionProof, NonInclusionProof
from .account import AccountView, margin_figures, strategy_accounts
from .market_data import HeldPosition, RestingOrder

BOOK_DEPTH = 100


class ProofUnavailable(DdxError):
    """No proof to give: no epoch frozen yet (`no_frozen_epoch`) or the epoch asked for is not retained
    (`unknown_epoch`)."""


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: int
    size: int  # the sum of the level's live orders' remaining sizes


@dataclass(frozen=True, slots=True)
class BookView:
    market: bytes
    bids: list[BookLevel]  # best (highest) first
    asks: list[BookLevel]  # best (lowest) first
    index: int
    mark: int


@dataclass(frozen=True, slots=True)
class StrategyView:
    """One strategy account: its cash and the margin figures the engine checks it against (docs/engine.md)."""

    strategy: bytes
    token: bytes
    collateral: int
    unrealized_pnl: int
    equity: int  # collateral + unrealized PnL at the mark
    initial_margin: int  # what open positions and orders need to open more
    maintenance_margin: int  # below this equity the strategy is liquidated
    free_collateral: int  # what a withdraw intent may take now: unrealized profit does not count


@dataclass(frozen=True, slots=True)
class PositionView:
    strategy: bytes
    market: bytes
    size: int  # signed: > 0 long
    cost: int
    realized_pnl: int
    mark: int
    unrealized_pnl: int


@dataclass(frozen=True, slots=True)
class OrderView:
    order_hash: bytes
    strategy: bytes
    market: bytes
    side: int
    order_type: int
    price: int
    remaining: int
    original: int
    reduce_only: bool
    client_order_id: bytes = b"\x00" * 32  # zero: none
    expiry_ms: int = 0  # zero: good till cancelled
    trader: bytes = b""


@dataclass(frozen=True, slots=True)
class BalanceView:
    token: bytes
    withdrawable: int  # the cumulative WITHDRAWAL leaf value: claimable once an epoch holding it is recorded


@dataclass(frozen=True, slots=True)
class AgentView:
    """A key the trader approved to trade for it (docs/engine.md §3.2)."""

    agent: bytes
    strategy: bytes  # zero: every strategy
    scope: int
    valid_from_ms: int
    expiry_ms: int
    expired: bool  # by the sequenced time


@dataclass(frozen=True, slots=True)
class TriggerView:
    """A waiting trigger order (docs/engine.md §4.8)."""

    trigger_id: bytes
    strategy: bytes
    market: bytes
    side: int
    direction: int  # 0: fires when the mark rises to trigger_price, 1: when it falls to it
    trigger_price: int
    order_type: int
    price: int
    size: int  # 0 on an attached trigger: the whole position
    reduce_only: bool
    attached: bool
    group: bytes
    client_order_id: bytes


@dataclass(frozen=True, slots=True)
class TwapView:
    """A running TWAP order (docs/engine.md §4.9)."""

    twap_id: bytes
    strategy: bytes
    market: bytes
    side: int
    size: int
    executed: int
    slices_done: int
    slices: int
    next_slice_ms: int
    interval_ms: int
    limit_price: int
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class TraderView:
    trader: bytes
    known: bool
    strategies: list[StrategyView]
    positions: list[PositionView]
    balances: list[BalanceView]
    open_orders: list[OrderView]
    agents: list[AgentView]
    triggers: list[TriggerView] = ()
    twaps: list[TwapView] = ()


@dataclass(frozen=True, slots=True)
class MarketView:
    market: bytes
    token: bytes
    tick: int
    lot: int
    size_decimals: int
    initial_margin_bps: int
    maintenance_margin_bps: int
    maker_fee_bps: int
    taker_fee_bps: int
    liquidation_fee_bps: int
    market_order_band_bps: int
    premium_cap_bps: int
    funding_cap_bps: int
    funding_dampener: int
    funding_interval_ms: int
    max_order_notional: int
    active: bool
    index: int
    mark: int
    next_funding_ms: int
    last_funding_per_unit: int
    open_interest: int  # the sum of long sizes (= the sum of short sizes)
    predicted_funding_per_unit: int = 0  # what the next funding would pay per contract at the current mark and index


@dataclass(frozen=True, slots=True)
class LeafProof:
    """A leaf of (trader, token) against `epoch`'s frozen root, or its non-inclusion (`included` False, zeros)."""

    epoch: int
    root: bytes
    trader: bytes
    token: bytes
    included: bool
    proof: InclusionProof | NonInclusionProof  # rendered as docs/protocol.md §4 says


@dataclass(frozen=True, slots=True)
class WithdrawalProof(LeafProof):
    cumulative: int  # what the WITHDRAWAL leaf lets the trader have claimed in total


@dataclass(frozen=True, slots=True)
class BalanceProof(LeafProof):
    amount: int  # what the escape hatch pays (docs/protocol.md §2, BALANCE)
    deposited: int


class ExchangeView(Protocol):
    """What the API reads from the node's live state (EngineAdapter provides it)."""

    def book(self, market: bytes) -> BookView | None: ...

    def trader(self, trader: bytes) -> TraderView: ...

    def market(self, market: bytes) -> MarketView | None: ...

    async def prepare_proofs(self, epoch: int | None) -> None:
        """Make `epoch`'s proofs cheap (rebuild its tree off the event loop); optional before a proof call."""
        ...

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> WithdrawalProof:
        """Against `epoch`'s frozen root (None: the latest frozen epoch); ProofUnavailable if there is none."""
        ...

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> BalanceProof: ...

    def state_root(self) -> bytes: ...

    def markets(self) -> list[MarketView]:
        """Every listed market, by id."""
        ...

    def open_order(self, order_hash: bytes | None = None, *, trader: bytes | None = None, strategy: bytes | None = None,
                   client_order_id: bytes | None = None) -> OrderView | None:
        """An open order by its id, or by (trader, strategy, client order id); None if there is none open."""
        ...

    def account(self, trader: bytes) -> AccountView:
        """The trader's strategy accounts with their margin figures and liquidation prices (node/account.py)."""
        ...

    def market_data_seed(self) -> MarketDataSeed:
        """What node/market_data.py restarts from after a snapshot: the books and positions now."""
        ...


@dataclass(frozen=True, slots=True)
class MarketDataSeed:
    ordinal: int  # the last update the state includes
    time: int  # the engine's sequenced time
    orders: list[RestingOrder]
    positions: list[HeldPosition]


# ---------------------------------------------------------------------------------------------- builders


def book_view(engine: Engine, market: bytes, depth: int = BOOK_DEPTH) -> BookView | None:
    m = engine.markets.get(market)
    if m is None:
        return None

    def levels(side: int, prices: Iterable[int]) -> list[BookLevel]:
        out = []
        for price in prices:
            level = m.book.levels[side].get(price)
            if level is None:
                continue
            size = sum(o.remaining for o in level[0])
            if size:
                out.append(BookLevel(price, size))
            if len(out) >= depth:
                break
        return out

    return BookView(market, levels(BUY, reversed(m.book.bid_prices)), levels(SELL, m.book.ask_prices), m.index, m.mark)


def trader_view(engine: Engine, trader: bytes) -> TraderView:
    accounts = strategy_accounts(engine, trader)
    tokens = sorted(engine.ledgers)
    strategies, positions, orders = [], [], []
    for account in accounts:
        f = margin_figures(account)
        strategies.append(StrategyView(
            account.strategy, account.token, f.collateral, f.unrealized_pnl, f.equity, f.initial_margin,
            f.maintenance_margin, f.free_collateral,
        ))
        for market_id, p in sorted(account.positions.items()):
            if p.size:
                mark = p.market.mark
                positions.append(PositionView(
                    account.strategy, market_id, p.size, p.cost, p.realized, mark, p.size * mark // p.market.one - p.cost
                ))
        for o in sorted(account.orders.values(), key=lambda o: o.seq):
            if o.remaining:
                orders.append(order_view(o))
    balances = []
    for token in tokens:
        leaf = engine.withdrawals.get(trader + token)
        if leaf is not None:
            balances.append(BalanceView(token, leaf.amount))
    agents = [
        AgentView(a.agent, a.strategy, a.scope, a.valid_from, a.expiry, a.expiry <= engine.time)
        for a in sorted((engine.agents[k] for k in engine.agents_of.get(trader, ())), key=lambda a: (a.agent, a.strategy))
    ]
    triggers = []
    twaps = []
    for account in accounts:
        for i in sorted(engine.triggers_of.get(account.skey, ()), key=lambda i: engine.triggers[i].seq):
            g = engine.triggers[i]
            triggers.append(TriggerView(g.id, account.strategy, g.market.id, g.side, g.direction, g.trigger_price,
                                        g.order_type, g.price, g.size, g.reduce_only, g.attached, g.group,
                                        g.client_order_id))
        for i in sorted(engine.twaps_of.get(account.skey, ()), key=lambda i: engine.twaps[i].seq):
            w = engine.twaps[i]
            twaps.append(TwapView(w.id, account.strategy, w.market.id, w.side, w.size, w.executed, w.next_slice,
                                  w.slices, w.due, w.interval, w.limit_price, w.reduce_only))
    return TraderView(trader, trader in engine.traders, strategies, positions, balances, orders, agents, triggers, twaps)


def market_view(engine: Engine, market: bytes) -> MarketView | None:
    m = engine.markets.get(market)
    if m is None:
        return None
    return MarketView(
        m.id, m.token, m.tick, m.lot, m.size_decimals, m.imr, m.mmr, m.maker_fee, m.taker_fee, m.liq_fee, m.band,
        m.premium_cap, m.funding_cap, m.dampener, m.funding_interval, m.max_notional, m.active, m.index, m.mark,
        m.next_funding, m.last_funding, sum(p.size for p in m.positions.values() if p.size > 0), funding_per_unit(m),
    )


def order_view(o) -> OrderView:
    a = o.account
    return OrderView(o.id, a.strategy, o.market.id, o.side, o.order_type, o.price, o.remaining, o.original,
                     o.reduce_only, o.client_order_id, o.expiry, a.trader)


def open_order_view(engine: Engine, order_hash: bytes | None, trader: bytes | None, strategy: bytes | None,
                    client_order_id: bytes | None) -> OrderView | None:
    if order_hash is None:  # a client order id may also name a waiting trigger: that is no open order
        found = engine.order_by_client_id(trader, strategy, client_order_id)
        order_hash = found.id if found is not None else None
    order = engine.orders.get(order_hash) if order_hash is not None else None
    return order_view(order) if order is not None and order.remaining else None


def markets_view(engine: Engine) -> list[MarketView]:
    return [market_view(engine, market) for market in sorted(engine.markets)]


def market_data_seed(engine: Engine) -> MarketDataSeed:
    orders = [RestingOrder(o.id, o.market.id, o.side, o.price, o.remaining)
              for o in sorted(engine.orders.values(), key=lambda o: o.seq) if o.remaining]
    positions = [HeldPosition(p.account.trader, p.account.strategy, m.id, p.size)
                 for m in engine.markets.values() for _, p in sorted(m.positions.items()) if p.size]
    return MarketDataSeed(engine.ordinal - 1, engine.time, orders, positions)


def _epoch_proofs(engine: Engine, trader: bytes, token: bytes, epoch: int | None) -> dict:
    retained = engine.retained_epochs
    if not retained:
        raise ProofUnavailable("no epoch has been frozen yet", reason="no_frozen_epoch")
    try:
        return engine.epoch_proofs(retained[-1] if epoch is None else epoch, trader, token)
    except UnknownEpochError as exc:
        raise ProofUnavailable(str(exc), reason="unknown_epoch") from None


def withdrawal_proof(engine: Engine, trader: bytes, token: bytes, epoch: int | None = None) -> WithdrawalProof:
    proofs = _epoch_proofs(engine, trader, token, epoch)
    value = proofs["withdrawal_value"]
    cumulative = decode_withdrawal_value(value)[2] if value is not None else 0
    return WithdrawalProof(proofs["epoch"], proofs["root"], trader, token, value is not None, proofs["withdrawal"], cumulative)


def balance_proof(engine: Engine, trader: bytes, token: bytes, epoch: int | None = None) -> BalanceProof:
    """The BALANCE(trader, token) leaf the escape hatch pays from, or (0, 0) with a non-inclusion proof."""
    proofs = _epoch_proofs(engine, trader, token, epoch)
    value = proofs["balance_value"]
    amount, deposited = decode_balance_value(value)[2:] if value is not None else (0, 0)
    return BalanceProof(proofs["epoch"], proofs["root"], trader, token, value is not None, proofs["balance"], amount, deposited)
