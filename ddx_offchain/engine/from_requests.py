"""Trader requests (docs/protocol.md §7, `protocol.requests`) as engine commands.

The node verifies the signature, the replay window and the nonce (§7.4), then hands the engine
`command_from_request(request, request_hash)`. Duck-typed on the request's PRIMARY_TYPE so the pure engine does not
import the signing stack.
"""

from __future__ import annotations

from . import commands as c


def command_from_request(request, request_hash: bytes):
    """The engine command for a verified trader request; `request_hash` becomes its request_id (and order id)."""
    kind = getattr(type(request), "PRIMARY_TYPE", None)
    r = request
    if kind == "PlaceOrder":
        return c.PlaceOrder(request_hash, r.trader, r.strategy, r.market, r.side, r.order_type, r.price, r.size,
                            r.reduce_only)
    if kind == "CancelOrder":
        return c.CancelOrder(request_hash, r.trader, r.strategy, r.market, r.order_hash)
    if kind == "CancelAll":
        return c.CancelAll(request_hash, r.trader, r.strategy, r.market)
    if kind == "ModifyOrder":
        return c.ModifyOrder(request_hash, r.trader, r.strategy, r.market, r.order_hash, r.price, r.size)
    if kind == "WithdrawIntent":
        return c.WithdrawIntent(request_hash, r.trader, r.strategy, r.token, r.amount)
    if kind == "CreateStrategy":
        return c.CreateStrategy(request_hash, r.trader, r.strategy)
    raise TypeError(f"not a trader request: {type(request).__name__}")
