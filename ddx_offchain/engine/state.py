"""The engine's state objects and the tree items they are written as (docs/engine.md, "Items").

Each object keeps its numbers as plain ints in __slots__ for the hot path; `item()` encodes it as its tree item
(key, value) or (key, None) once it is gone. The engine marks objects dirty and writes only those when a root is
needed.
"""

from __future__ import annotations

from collections import deque

from ..protocol.items import Kind
from .codec import SMALL_WORD, ZERO12, address_word, int_word, key_of, kind_word, uint_word, value_of
from .commands import ZERO_ADDRESS, ZERO_ID, name32

ZERO32 = ZERO_ID

FUND_TRADER = ZERO_ADDRESS  # the insurance fund's account: no request can name the zero address
FUND_STRATEGY = name32("insurance")

K_TRADER = int(Kind.TRADER)
K_STRATEGY = int(Kind.STRATEGY)
K_POSITION = int(Kind.POSITION)
K_ORDER = int(Kind.ORDER)
K_PRICE = int(Kind.PRICE)
K_FUND = int(Kind.INSURANCE_FUND)
K_WITHDRAWAL = int(Kind.WITHDRAWAL)
K_BALANCE = int(Kind.BALANCE)
K_EPOCH = int(Kind.EPOCH)
K_MARKET = int(Kind.MARKET)
K_FEE = int(Kind.FEE_ACCOUNT)
K_SYSTEM = int(Kind.SYSTEM)
K_FUNDING = int(Kind.FUNDING)
K_AGENT = int(Kind.AGENT)
K_SCHEDULE = int(Kind.SCHEDULE)
K_TRIGGER = int(Kind.TRIGGER)
K_TWAP = int(Kind.TWAP)

# the kind words of the items written most often (the value's first word), bound once for the encoders below
_ORDER_WORD = kind_word(K_ORDER)
_POSITION_WORD = kind_word(K_POSITION)
_STRATEGY_WORD = kind_word(K_STRATEGY)

SYSTEM_CURSORS = 0  # SYSTEM item identities: uint8 0 (cursors and limits), (uint8 1, address token) (token ledger)
SYSTEM_TOKEN = 1


class Order:
    id: bytes
    account: Account
    market: Market
    side: int
    order_type: int
    price: int
    remaining: int
    original: int
    seq: int
    reduce_only: bool
    client_order_id: bytes
    expiry: int
    in_tree: bool
    _key: bytes | None
    __slots__ = ("id", "account", "market", "side", "order_type", "price", "remaining", "original", "seq",
                 "reduce_only", "client_order_id", "expiry", "in_tree", "_key")

    def __init__(self, id, account, market, side, order_type, price, remaining, original, seq, reduce_only=False,
                 client_order_id=ZERO32, expiry=0):
        self.id = id
        self.account = account
        self.market = market
        self.side = side
        self.order_type = order_type  # LIMIT or POST_ONLY: the only types that rest
        self.price = price
        self.remaining = remaining  # 0 once filled or cancelled (the book drops it lazily)
        self.original = original
        self.seq = seq  # arrival order: time priority within a price level
        self.reduce_only = reduce_only  # fills are capped at the position; cancelled once there is none to reduce
        self.client_order_id = client_order_id  # the trader's own id, unique among the strategy's open orders
        self.expiry = expiry  # cancelled (EXPIRED) when the sequenced time reaches it; 0: good till cancelled
        self.in_tree = False
        self._key = None

    def item(self):
        key = self._key
        if key is None:
            key = self._key = key_of(K_ORDER, self.id)
        if not self.remaining:
            return key, None
        a = self.account
        # one join instead of a dozen concatenations; side, type and the flag are < 256 (validated on entry)
        return key, b"".join((
            _ORDER_WORD, self.id, ZERO12, a.trader, a.strategy, self.market.id, SMALL_WORD[self.side],
            SMALL_WORD[self.order_type], self.price.to_bytes(32, "big"), self.remaining.to_bytes(32, "big"),
            self.original.to_bytes(32, "big"), self.seq.to_bytes(32, "big"), SMALL_WORD[1 if self.reduce_only else 0],
            self.client_order_id, self.expiry.to_bytes(32, "big"),
        ))


class Position:
    """(strategy account, market): signed size, signed cost basis, realized PnL; open order totals (not an item:
    derived from the orders)."""

    account: Account
    market: Market
    size: int
    cost: int
    realized: int
    open_buy: int
    open_sell: int
    in_tree: bool
    _key: bytes | None
    safe_lo: int
    safe_hi: int
    safe_version: int
    __slots__ = ("account", "market", "size", "cost", "realized", "open_buy", "open_sell", "in_tree", "_key",
                 "safe_lo", "safe_hi", "safe_version")

    def __init__(self, account, market):
        self.account = account
        self.market = market
        # risk.sweep's cache: marks within [safe_lo, safe_hi] provably keep the account above maintenance margin
        # while the account is unchanged (safe_version == account.version). Derived, never state.
        self.safe_lo = 0
        self.safe_hi = -1
        self.safe_version = -1
        self.size = 0
        self.cost = 0
        self.realized = 0
        self.open_buy = 0
        self.open_sell = 0
        self.in_tree = False
        self._key = None

    def item(self):
        key = self._key
        a = self.account
        if key is None:
            key = self._key = key_of(K_POSITION, ZERO12 + a.trader + a.strategy + self.market.id)
        if not self.size:
            return key, None
        return key, b"".join((
            _POSITION_WORD, ZERO12, a.trader, a.strategy, self.market.id, self.size.to_bytes(32, "big", signed=True),
            self.cost.to_bytes(32, "big", signed=True), self.realized.to_bytes(32, "big", signed=True),
        ))


class Account:
    """A strategy's margin account in one collateral token (cross margin over that token's markets).
    The insurance fund is an Account too, written as the INSURANCE_FUND item."""

    trader: bytes
    strategy: bytes
    token: bytes
    skey: bytes
    collateral: int
    positions: dict[bytes, Position]
    orders: dict[bytes, Order]
    is_fund: bool
    in_tree: bool
    _key: bytes | None
    version: int
    __slots__ = ("trader", "strategy", "token", "skey", "collateral", "positions", "orders",
                 "is_fund", "in_tree", "_key", "version")

    def __init__(self, trader, strategy, token, is_fund=False):
        self.trader = trader
        self.strategy = strategy
        self.token = token
        self.skey = trader + strategy + token  # canonical order wherever iteration order shows
        self.collateral = 0
        self.positions = {}  # market id -> Position (present while size != 0 or orders are open)
        self.orders = {}  # order id -> Order (open orders of this account)
        self.is_fund = is_fund
        self.version = 0  # bumped on every collateral or position change (invalidates the sweep cache)
        self.in_tree = False
        self._key = None

    def item(self):
        key = self._key
        if self.is_fund:
            if key is None:
                key = self._key = key_of(K_FUND, ZERO12 + self.token)
            return key, value_of(K_FUND, ZERO12 + self.token + int_word(self.collateral))
        if key is None:
            key = self._key = key_of(K_STRATEGY, ZERO12 + self.trader + self.strategy + ZERO12 + self.token)
        return key, b"".join((
            _STRATEGY_WORD, ZERO12, self.trader, self.strategy, ZERO12, self.token,
            self.collateral.to_bytes(32, "big", signed=True),
        ))


class Trader:
    __slots__ = ("address", "strategies", "created", "in_tree", "_key")

    def __init__(self, address):
        self.address = address
        self.strategies = set()  # strategy ids that exist (opened by CreateStrategy or by a deposit)
        # strategies the trader opened itself (CreateStrategy): what max_strategies limits. Deposits never count, so
        # nobody can use up another trader's limit with deposit_to (security review finding 4).
        self.created = 0
        self.in_tree = False
        self._key = None

    def item(self):
        if self._key is None:
            self._key = key_of(K_TRADER, ZERO12 + self.address)
        return self._key, value_of(
            K_TRADER, ZERO12 + self.address + uint_word(len(self.strategies)) + uint_word(self.created)
        )


class Agent:
    """An approval: `agent` may sign `trader`'s trading requests for `strategy` (zero: every strategy) with
    timestamps from `valid_from` (the sequenced time of the approval) while the sequenced time is before `expiry`."""

    __slots__ = ("trader", "agent", "strategy", "scope", "valid_from", "expiry", "in_tree", "_key", "gone")

    def __init__(self, trader, agent, strategy, scope, valid_from, expiry):
        self.trader = trader
        self.agent = agent
        self.strategy = strategy
        self.scope = scope
        self.valid_from = valid_from
        self.expiry = expiry
        self.gone = False  # revoked or replaced: deleted from the tree at the next flush
        self.in_tree = False
        self._key = None

    @property
    def skey(self) -> bytes:
        return self.trader + self.agent + self.strategy

    def item(self):
        if self._key is None:
            self._key = key_of(K_AGENT, ZERO12 + self.trader + ZERO12 + self.agent + self.strategy)
        if self.gone:
            return self._key, None
        return self._key, value_of(
            K_AGENT,
            ZERO12 + self.trader + ZERO12 + self.agent + self.strategy + uint_word(self.scope)
            + uint_word(self.valid_from) + uint_word(self.expiry),
        )


class Trigger:
    """A conditional order waiting for the mark (docs/engine.md §4.8); becomes the order `id` when it fires."""

    __slots__ = ("id", "account", "market", "side", "direction", "trigger_price", "order_type", "price", "size",
                 "reduce_only", "attached", "group", "client_order_id", "seq", "gone", "in_tree", "_key")

    def __init__(self, id, account, market, side, direction, trigger_price, order_type, price, size, reduce_only,
                 attached, group, client_order_id, seq):
        self.id = id
        self.account = account
        self.market = market
        self.side = side
        self.direction = direction
        self.trigger_price = trigger_price
        self.order_type = order_type
        self.price = price
        self.size = size
        self.reduce_only = reduce_only
        self.attached = attached
        self.group = group
        self.client_order_id = client_order_id
        self.seq = seq  # arrival order (shared with orders): firing order among triggers due together
        self.gone = False
        self.in_tree = False
        self._key = None

    def item(self):
        if self._key is None:
            self._key = key_of(K_TRIGGER, self.id)
        if self.gone:
            return self._key, None
        a = self.account
        return self._key, value_of(K_TRIGGER, b"".join((
            self.id, ZERO12, a.trader, a.strategy, self.market.id, uint_word(self.side), uint_word(self.direction),
            uint_word(self.trigger_price), uint_word(self.order_type), uint_word(self.price), uint_word(self.size),
            uint_word(1 if self.reduce_only else 0), uint_word(1 if self.attached else 0), self.group,
            self.client_order_id, uint_word(self.seq),
        )))


class Twap:
    """A TWAP order in progress (docs/engine.md §4.9): slice k (0-based) is due at start + k × interval."""

    __slots__ = ("id", "account", "market", "side", "size", "executed", "start", "interval", "slices", "next_slice",
                 "limit_price", "reduce_only", "seq", "gone", "in_tree", "_key")

    def __init__(self, id, account, market, side, size, executed, start, interval, slices, next_slice, limit_price,
                 reduce_only, seq):
        self.id = id
        self.account = account
        self.market = market
        self.side = side
        self.size = size
        self.executed = executed
        self.start = start
        self.interval = interval
        self.slices = slices
        self.next_slice = next_slice  # the index of the next slice to run
        self.limit_price = limit_price  # 0: market-order slices
        self.reduce_only = reduce_only
        self.seq = seq
        self.gone = False
        self.in_tree = False
        self._key = None

    @property
    def due(self) -> int:
        return self.start + self.next_slice * self.interval

    def item(self):
        if self._key is None:
            self._key = key_of(K_TWAP, self.id)
        if self.gone:
            return self._key, None
        a = self.account
        return self._key, value_of(K_TWAP, b"".join((
            self.id, ZERO12, a.trader, a.strategy, self.market.id, uint_word(self.side), uint_word(self.size),
            uint_word(self.executed), uint_word(self.start), uint_word(self.interval), uint_word(self.slices),
            uint_word(self.next_slice), uint_word(self.limit_price), uint_word(1 if self.reduce_only else 0),
            uint_word(self.seq),
        )))


class Schedule:
    """A dead man's switch: at `time` (sequenced), cancel the trader's orders of `strategy` in `market` (zero: all)."""

    __slots__ = ("trader", "strategy", "market", "time", "gone", "in_tree", "_key")

    def __init__(self, trader, strategy, market, time):
        self.trader = trader
        self.strategy = strategy
        self.market = market
        self.time = time
        self.gone = False
        self.in_tree = False
        self._key = None

    @property
    def skey(self) -> bytes:
        return self.trader + self.strategy + self.market

    def item(self):
        if self._key is None:
            self._key = key_of(K_SCHEDULE, ZERO12 + self.trader + self.strategy + self.market)
        if self.gone:
            return self._key, None
        return self._key, value_of(K_SCHEDULE, ZERO12 + self.trader + self.strategy + self.market + uint_word(self.time))


class Book:
    """Price levels: dict price -> [deque of orders (time order), live count]; sorted price lists.
    Cancelled or filled orders stay in their deque with remaining == 0 until a walk or a compaction drops them."""

    levels: tuple[dict[int, list], dict[int, list]]
    bid_prices: list[int]
    ask_prices: list[int]
    __slots__ = ("levels", "bid_prices", "ask_prices")

    def __init__(self):
        self.levels = ({}, {})  # [BUY] bids, [SELL] asks
        self.bid_prices = []  # ascending: best bid last
        self.ask_prices = []  # ascending: best ask first

    def best_bid(self):
        return self.bid_prices[-1] if self.bid_prices else 0

    def best_ask(self):
        return self.ask_prices[0] if self.ask_prices else 0


class Market:
    id: bytes
    token: bytes
    tick: int
    lot: int
    one: int
    imr: int
    mmr: int
    maker_fee: int
    taker_fee: int
    band: int
    max_notional: int
    mark: int
    book: Book
    positions: dict[bytes, Position]
    __slots__ = (
        "id", "token", "tick", "lot", "size_decimals", "one", "imr", "mmr", "maker_fee", "taker_fee", "liq_fee",
        "band", "premium_cap", "funding_cap", "dampener", "funding_interval", "max_notional", "active",
        "index", "mark", "price_time", "next_funding", "last_funding", "cumulative_funding",
        "book", "positions", "in_tree", "_key", "price_view", "funding_view",
    )

    def __init__(self, params):
        self.id = params.market
        self.token = params.token
        self.tick = params.tick
        self.lot = params.lot
        self.size_decimals = params.size_decimals
        self.one = 10**params.size_decimals
        self.set_params(params)
        self.index = 0
        self.mark = 0
        self.price_time = 0
        self.next_funding = 0
        self.last_funding = 0
        self.cumulative_funding = 0
        self.book = Book()
        self.positions = {}  # account sort key -> Position with size != 0
        self.in_tree = False
        self._key = None
        self.price_view = _PriceView(self)
        self.funding_view = _FundingView(self)

    def set_params(self, p):
        self.imr = p.initial_margin_bps
        self.mmr = p.maintenance_margin_bps
        self.maker_fee = p.maker_fee_bps
        self.taker_fee = p.taker_fee_bps
        self.liq_fee = p.liquidation_fee_bps
        self.band = p.market_order_band_bps
        self.premium_cap = p.premium_cap_bps
        self.funding_cap = p.funding_cap_bps
        self.dampener = p.funding_dampener
        self.funding_interval = p.funding_interval_ms
        self.max_notional = p.max_order_notional
        self.active = p.active

    def params_words(self) -> bytes:
        return (
            self.id + address_word(self.token) + uint_word(self.tick) + uint_word(self.lot)
            + uint_word(self.size_decimals) + uint_word(self.imr) + uint_word(self.mmr) + uint_word(self.maker_fee)
            + uint_word(self.taker_fee) + uint_word(self.liq_fee) + uint_word(self.band)
            + uint_word(self.premium_cap) + uint_word(self.funding_cap) + uint_word(self.dampener)
            + uint_word(self.funding_interval) + uint_word(self.max_notional) + uint_word(1 if self.active else 0)
        )

    def item(self):
        if self._key is None:
            self._key = key_of(K_MARKET, self.id)
        return self._key, value_of(K_MARKET, self.params_words())


class _PriceView:
    __slots__ = ("market", "in_tree", "_key")

    def __init__(self, market):
        self.market = market
        self.in_tree = False
        self._key = None

    def item(self):
        m = self.market
        if self._key is None:
            self._key = key_of(K_PRICE, m.id)
        return self._key, value_of(K_PRICE, m.id + uint_word(m.index) + uint_word(m.mark) + uint_word(m.price_time))


class _FundingView:
    __slots__ = ("market", "in_tree", "_key")

    def __init__(self, market):
        self.market = market
        self.in_tree = False
        self._key = None

    def item(self):
        m = self.market
        if self._key is None:
            self._key = key_of(K_FUNDING, m.id)
        return self._key, value_of(
            K_FUNDING,
            m.id + uint_word(m.next_funding) + int_word(m.last_funding) + int_word(m.cumulative_funding),
        )


class TokenLedger:
    """Per collateral token: total deposited, total moved to withdrawable, fees collected."""

    __slots__ = ("token", "deposited", "withdrawable", "fees", "fund", "in_tree", "_key", "fee_view")

    def __init__(self, token, fund):
        self.token = token
        self.deposited = 0
        self.withdrawable = 0
        self.fees = 0
        self.fund = fund  # the insurance fund's Account for this token
        self.in_tree = False
        self._key = None
        self.fee_view = _FeeView(self)

    def item(self):
        if self._key is None:
            self._key = key_of(K_SYSTEM, uint_word(SYSTEM_TOKEN) + address_word(self.token))
        return self._key, value_of(
            K_SYSTEM,
            uint_word(SYSTEM_TOKEN) + address_word(self.token) + uint_word(self.deposited)
            + uint_word(self.withdrawable),
        )


class _FeeView:
    __slots__ = ("ledger", "in_tree", "_key")

    def __init__(self, ledger):
        self.ledger = ledger
        self.in_tree = False
        self._key = None

    def item(self):
        t = self.ledger
        if self._key is None:
            self._key = key_of(K_FEE, address_word(t.token))
        return self._key, value_of(K_FEE, address_word(t.token) + uint_word(t.fees))


class PairLeaf:
    """A WITHDRAWAL leaf (trader, token, cumulative) or a BALANCE leaf (trader, token, amount, deposited): the
    layouts the custody contract reads. `deposited` (BALANCE only) is every deposit credited to the pair so far."""

    __slots__ = ("kind", "trader", "token", "amount", "deposited", "in_tree", "_key")

    def __init__(self, kind, trader, token):
        self.kind = kind
        self.trader = trader
        self.token = token
        self.amount = 0
        self.deposited = 0
        self.in_tree = False
        self._key = None

    def item(self):
        if self._key is None:
            self._key = key_of(self.kind, ZERO12 + self.trader + ZERO12 + self.token)
        words = ZERO12 + self.trader + ZERO12 + self.token + uint_word(self.amount)
        if self.kind == K_BALANCE:
            if not self.amount and not self.deposited:
                return self._key, None  # (0, 0) is never a leaf: the escape hatch proves the pair absent instead
            words += uint_word(self.deposited)
        return self._key, value_of(self.kind, words)


class EpochRecord:
    __slots__ = ("epoch", "root", "ordinal", "time", "in_tree", "_key")

    def __init__(self, epoch, root, ordinal, time):
        self.epoch = epoch
        self.root = root
        self.ordinal = ordinal
        self.time = time
        self.in_tree = False
        self._key = None

    def item(self):
        if self._key is None:
            self._key = key_of(K_EPOCH, uint_word(self.epoch))
        return self._key, value_of(
            K_EPOCH, uint_word(self.epoch) + self.root + uint_word(self.ordinal) + uint_word(self.time)
        )


def new_level():
    return [deque(), 0]
