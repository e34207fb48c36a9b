"""Genesis configuration and the market-parameter rules every listing must satisfy."""

from __future__ import annotations

import msgspec

from .commands import MarketParams
from .errors import ConfigError

MAX_QUANTITY = 2**128 - 1  # largest price, size or amount (docs/protocol.md §7.1): products stay inside uint256
MAX_BPS = 10_000


class GenesisConfig(msgspec.Struct, frozen=True):
    tokens: tuple[bytes, ...]  # collateral tokens (20-byte addresses); the first is the default collateral
    markets: tuple[MarketParams, ...] = ()
    max_open_orders: int = 200  # per strategy account
    max_strategies: int = 16  # per trader: CreateStrategy refused past it; deposits never count nor refuse
    epochs_retained: int = 4  # frozen epoch trees kept for proofs

    def validate(self) -> None:
        if not self.tokens:
            raise ConfigError("at least one collateral token")
        if len(set(self.tokens)) != len(self.tokens):
            raise ConfigError("duplicate token")
        for t in self.tokens:
            if not isinstance(t, bytes) or len(t) != 20 or t == b"\x00" * 20:
                raise ConfigError("a token is a non-zero 20-byte address")
        for name in ("max_open_orders", "max_strategies", "epochs_retained"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v < 2**32:
                raise ConfigError(f"{name} must be in 1..2^32-1")
        seen = set()
        for p in self.markets:
            problem = market_params_problem(p, set(self.tokens))
            if problem:
                raise ConfigError(problem)
            if p.market in seen:
                raise ConfigError("duplicate market")
            seen.add(p.market)


def market_params_problem(p: MarketParams, tokens: set[bytes]) -> str | None:
    """Why these parameters cannot be listed, or None. The rules keep every fill exact and margins meaningful."""
    if not isinstance(p, MarketParams):
        return "not MarketParams"
    if not isinstance(p.market, bytes) or len(p.market) != 32 or p.market == b"\x00" * 32:
        return "market id must be a non-zero bytes32"
    if p.token not in tokens:
        return "unknown collateral token"
    ints = (p.tick, p.lot, p.size_decimals, p.initial_margin_bps, p.maintenance_margin_bps, p.maker_fee_bps,
            p.taker_fee_bps, p.liquidation_fee_bps, p.market_order_band_bps, p.premium_cap_bps, p.funding_cap_bps,
            p.funding_dampener, p.funding_interval_ms, p.max_order_notional)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
        return "every parameter is a non-negative integer"
    if not 0 < p.tick <= MAX_QUANTITY or not 0 < p.lot <= MAX_QUANTITY:
        return "tick and lot must be positive"
    if p.size_decimals > 36:
        return "size_decimals at most 36"
    if (p.tick * p.lot) % (10**p.size_decimals):
        # every fill's notional price*size/10**size_decimals is then an exact integer
        return "tick * lot must be a multiple of 10**size_decimals"
    if not 0 < p.maintenance_margin_bps < p.initial_margin_bps <= MAX_BPS:
        return "0 < maintenance margin < initial margin <= 100%"
    for name in ("maker_fee_bps", "taker_fee_bps", "liquidation_fee_bps", "market_order_band_bps",
                 "premium_cap_bps", "funding_cap_bps"):
        if getattr(p, name) > MAX_BPS:
            return f"{name} at most 10000"
    if p.funding_dampener < 1:
        return "funding_dampener at least 1"
    if not 0 < p.funding_interval_ms < 2**64:
        return "funding_interval_ms must be positive"
    if not 0 < p.max_order_notional <= MAX_QUANTITY:
        return "max_order_notional must be positive"
    if not isinstance(p.active, bool):
        return "active is a bool"
    return None
