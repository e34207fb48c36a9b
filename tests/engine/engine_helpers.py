"""Builders shared by the engine tests: a standard market, traders, and a driver that applies commands."""

from __future__ import annotations

import itertools

from ddx_offchain.engine import Engine, GenesisConfig
from ddx_offchain.engine.commands import (
    LIMIT,
    MAIN_STRATEGY,
    AdvanceEpoch,
    AdvanceTime,
    CancelAll,
    CancelOrder,
    ChainBlock,
    Deposit,
    ForcedRequest,
    IndexPrice,
    IndexPrices,
    MarketParams,
    ModifyOrder,
    PlaceOrder,
    WithdrawIntent,
    name32,
)
from ddx_offchain.engine.updates import Accepted, Rejected
from ddx_offchain.protocol.requests import forced_fields

USDC = bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
ETHP = name32("ETHP")
BTCP = name32("BTCP")
DOLLAR = 1_000_000  # USDC base units
ONE = 10**6  # size_decimals = 6: size 1_000_000 is one contract


def trader(i: int) -> bytes:
    return (0x1000 + i).to_bytes(20, "big")


def market_params(market: bytes = ETHP, **overrides) -> MarketParams:
    fields = dict(
        market=market, token=USDC, tick=10_000, lot=1_000, size_decimals=6, initial_margin_bps=1_000,
        maintenance_margin_bps=500, maker_fee_bps=2, taker_fee_bps=5, liquidation_fee_bps=50,
        market_order_band_bps=500, premium_cap_bps=100, funding_cap_bps=75, funding_dampener=8,
        funding_interval_ms=3_600_000, max_order_notional=10**13, active=True,
    )
    fields.update(overrides)
    return MarketParams(**fields)


class Driver:
    """Applies commands with fresh request ids, tracks deposit seq and block numbers."""

    def __init__(self, engine: Engine | None = None, **genesis) -> None:
        if engine is None:
            genesis.setdefault("tokens", (USDC,))
            genesis.setdefault("markets", (market_params(),))
            engine = Engine(GenesisConfig(**genesis))
        self.engine = engine
        self.ids = itertools.count(1)
        self.seq = engine.deposit_seq
        self.block = engine.block_number
        self.time = engine.time
        self.log: list = []
        self.updates: list = []

    def rid(self) -> bytes:
        return next(self.ids).to_bytes(32, "big")

    def apply(self, command) -> list:
        self.log.append(command)
        updates = self.engine.apply(command)
        self.updates.append(updates)
        return updates

    def deposit(self, who: bytes, amount: int, strategy: bytes = MAIN_STRATEGY, token: bytes = USDC) -> list:
        self.seq += 1
        self.block += 1
        return self.apply(ChainBlock(self.rid(), self.block, self.block.to_bytes(32, "big"),
                                     (Deposit(self.seq, who, strategy, token, amount),)))

    def force(self, request, *, deposits: tuple = ()) -> list:
        """A chain block carrying `request` (a protocol.requests request of its trader) as the next forced request,
        after this block's `deposits` (Deposit values with the next seqs)."""
        self.forced = getattr(self, "forced", self.engine.forced_seq) + 1
        self.block += 1
        request_type, fields = forced_fields(request)
        forced = ForcedRequest.of(self.forced, self.engine.deposit_seq + len(deposits), request.trader, request_type, fields)
        self.seq += len(deposits)
        return self.apply(ChainBlock(self.rid(), self.block, self.block.to_bytes(32, "big"), tuple(deposits), (forced,)))

    def price(self, price: int, market: bytes = ETHP) -> list:
        return self.apply(IndexPrices(self.rid(), (IndexPrice(market, price),)))

    def order(self, who: bytes, side: int, price: int, size: int, order_type: int = LIMIT, *,
              market: bytes = ETHP, strategy: bytes = MAIN_STRATEGY, reduce_only: bool = False) -> list:
        return self.apply(PlaceOrder(self.rid(), who, strategy, market, side, order_type, price, size, reduce_only))

    def cancel(self, who: bytes, order_id: bytes, market: bytes = ETHP, strategy: bytes = MAIN_STRATEGY) -> list:
        return self.apply(CancelOrder(self.rid(), who, strategy, market, order_id))

    def cancel_all(self, who: bytes, market: bytes = b"\x00" * 32, strategy: bytes = MAIN_STRATEGY) -> list:
        return self.apply(CancelAll(self.rid(), who, strategy, market))

    def modify(self, who: bytes, order_id: bytes, price: int, size: int, market: bytes = ETHP,
               strategy: bytes = MAIN_STRATEGY) -> list:
        return self.apply(ModifyOrder(self.rid(), who, strategy, market, order_id, price, size))

    def withdraw(self, who: bytes, amount: int, token: bytes = USDC, strategy: bytes = MAIN_STRATEGY) -> list:
        return self.apply(WithdrawIntent(self.rid(), who, strategy, token, amount))

    def advance(self, ms: int) -> list:
        self.time += ms
        return self.apply(AdvanceTime(self.rid(), self.time))

    def epoch(self) -> list:
        return self.apply(AdvanceEpoch(self.rid(), self.engine.epoch + 1))


def accepted(updates: list) -> bool:
    return isinstance(updates[0], Accepted)


def reason(updates: list) -> int | None:
    return updates[0].reason if isinstance(updates[0], Rejected) else None


def of_type(updates: list, cls) -> list:
    return [u for u in updates if isinstance(u, cls)]


def usd(x: float | int) -> int:
    return int(round(x * DOLLAR))


def conservation(engine: Engine) -> dict:
    """Per token: deposits - (sum of (collateral - cost) over all accounts + fees + withdrawable); must be 0 (the
    engine checks it itself at every epoch freeze)."""
    return engine.ledger_imbalance()


def items_except_cursors(engine: Engine) -> list:
    """Every state item except the SYSTEM cursors (whose update ordinal moves with every update, rejections
    included): what "a rejection changes nothing" compares."""
    from ddx_offchain.engine.engine import _SYSTEM_KEY

    return [(k, v) for k, v in engine.all_items() if k != _SYSTEM_KEY]
