"""Read-only views of engine state for the node and the API (JSON-ready: ints, 0x-hex strings, lists, dicts).

They read the live state; nothing here changes it. Amounts follow docs/engine.md (token base units, integer prices
and sizes)."""

from __future__ import annotations

from . import margin as mg
from .commands import BUY


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def strategy_view(engine, trader: bytes, strategy: bytes, token: bytes) -> dict | None:
    """Collateral, equity, margins, what is free to withdraw, positions and open orders of one strategy account;
    None if the account does not exist."""
    a = engine.accounts.get(trader + strategy + token)
    if a is None or a.is_fund:
        return None
    e, mm = mg.equity_and_mm(a)
    im = mg.initial_requirement(a)
    unrealized = mg.unrealized(a)
    return {
        "trader": _hex(trader),
        "strategy": _hex(strategy),
        "token": _hex(token),
        "collateral": a.collateral,
        "unrealized_pnl": unrealized,
        "equity": e,
        "initial_margin": im,
        "maintenance_margin": mm,
        "free_collateral": max(0, a.collateral + min(0, unrealized) - im),
        "positions": [
            {
                "market": _hex(mid),
                "size": pos.size,
                "cost": pos.cost,
                "realized_pnl": pos.realized,
                "mark": pos.market.mark,
                "unrealized_pnl": pos.size * pos.market.mark // pos.market.one - pos.cost,
            }
            for mid, pos in sorted(a.positions.items())
            if pos.size
        ],
        "orders": [order_view(o) for o in sorted(a.orders.values(), key=lambda o: o.seq)],
    }


def order_view(order) -> dict:
    a = order.account
    return {
        "order_id": _hex(order.id),
        "trader": _hex(a.trader),
        "strategy": _hex(a.strategy),
        "market": _hex(order.market.id),
        "side": order.side,
        "order_type": order.order_type,
        "price": order.price,
        "remaining": order.remaining,
        "original_size": order.original,
        "reduce_only": order.reduce_only,
    }


def book_view(engine, market: bytes, depth: int = 20) -> dict | None:
    """Aggregated price levels, best first: {"bids": [[price, size, orders]…], "asks": …}."""
    m = engine.markets.get(market)
    if m is None:
        return None
    book = m.book

    def levels(side, prices):
        out = []
        for p in prices:
            dq, live = book.levels[side][p]
            out.append([p, sum(o.remaining for o in dq), live])
            if len(out) >= depth:
                break
        return out

    return {
        "market": _hex(market),
        "bids": levels(BUY, reversed(book.bid_prices)),
        "asks": levels(1 - BUY, book.ask_prices),
        "index": m.index,
        "mark": m.mark,
    }


def market_view(engine, market: bytes) -> dict | None:
    m = engine.markets.get(market)
    if m is None:
        return None
    long_oi = sum(p.size for p in m.positions.values() if p.size > 0)
    return {
        "market": _hex(m.id),
        "token": _hex(m.token),
        "tick": m.tick,
        "lot": m.lot,
        "size_decimals": m.size_decimals,
        "initial_margin_bps": m.imr,
        "maintenance_margin_bps": m.mmr,
        "maker_fee_bps": m.maker_fee,
        "taker_fee_bps": m.taker_fee,
        "liquidation_fee_bps": m.liq_fee,
        "market_order_band_bps": m.band,
        "premium_cap_bps": m.premium_cap,
        "funding_cap_bps": m.funding_cap,
        "funding_dampener": m.dampener,
        "funding_interval_ms": m.funding_interval,
        "max_order_notional": m.max_notional,
        "active": m.active,
        "index": m.index,
        "mark": m.mark,
        "next_funding_ms": m.next_funding,
        "last_funding_per_unit": m.last_funding,
        "open_interest": long_oi,
    }
