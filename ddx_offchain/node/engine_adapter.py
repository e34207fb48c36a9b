"""The engine behind the node: wire request -> engine command, engine updates -> routed execution updates, and
the read-only views the API serves (book, trader state, withdrawal proofs).

Operator-command entries (tag 0x02) must decode to an *operator* command: a trader command there would carry no
trader signature, so it is refused before the engine sees it.
"""

from __future__ import annotations

from ..engine import commands as ec
from ..engine.engine import Engine
from ..engine.errors import CommandDecodeError, UnknownEpochError
from ..engine.reasons import CancelReason, Reject
from ..engine.updates import Rejected, Update
from ..protocol import requests as pr
from ..protocol.eip712 import checksum_address
from .state_machine import CommandRefused, ExecutionUpdate

BOOK_DEPTH = 100
_TRADER_FIELDS = ("trader", "maker_trader", "taker_trader", "counterparty_trader")


def to_engine_command(signed: pr.SignedRequest):
    """The engine command for a verified trader request; `request_id` is its request hash (docs/protocol.md §7.1)."""
    r, rid = signed.request, signed.request_hash
    if isinstance(r, pr.PlaceOrder):
        return ec.PlaceOrder(rid, r.trader, r.strategy, r.market, r.side, r.order_type, r.price, r.size, r.reduce_only)
    if isinstance(r, pr.CancelOrder):
        return ec.CancelOrder(rid, r.trader, r.strategy, r.market, r.order_hash)
    if isinstance(r, pr.CancelAll):
        return ec.CancelAll(rid, r.trader, r.strategy, r.market)
    if isinstance(r, pr.ModifyOrder):
        return ec.ModifyOrder(rid, r.trader, r.strategy, r.market, r.order_hash, r.price, r.size)
    if isinstance(r, pr.WithdrawIntent):
        return ec.WithdrawIntent(rid, r.trader, r.strategy, r.token, r.amount)
    if isinstance(r, pr.CreateStrategy):
        return ec.CreateStrategy(rid, r.trader, r.strategy)
    raise TypeError(f"not a trader request: {type(r).__name__}")


def _json_value(value):
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)  # JSON numbers lose precision above 2^53
    return value


def update_data(update: Update) -> dict:
    """The JSON form of an engine update: hex bytes, decimal-string integers, reason names beside codes."""
    data = {name: _json_value(getattr(update, name)) for name in update.__struct_fields__ if name != "ordinal"}
    data["type"] = type(update).__name__
    if isinstance(update, Rejected):
        data["reasonName"] = Reject(update.reason).name.lower()
    elif type(update).__name__ == "OrderUpdate":
        data["reasonName"] = CancelReason(update.reason).name.lower()
    return data


def route(update: Update, request_index: int) -> ExecutionUpdate:
    traders = tuple(dict.fromkeys(getattr(update, f) for f in _TRADER_FIELDS if hasattr(update, f)))
    market = getattr(update, "market", None)
    return ExecutionUpdate(update.ordinal, request_index, type(update).__name__, traders, market, update_data(update))


class EngineAdapter:
    """ExecutionEngine + ExchangeView over `Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._request_traders: dict[bytes, bytes] = {}

    # ------------------------------------------------------------ ExecutionEngine

    def execute_request(self, signed: pr.SignedRequest, request_index: int) -> list[ExecutionUpdate]:
        updates = self.engine.apply(to_engine_command(signed))
        trader = signed.request.trader
        out = []
        for u in updates:
            routed = route(u, request_index)
            if not routed.traders:  # Accepted/Rejected name only the request: route them to its trader
                routed = ExecutionUpdate(routed.ordinal, request_index, routed.kind, (trader,), getattr(signed.request, "market", None), routed.data)
            out.append(routed)
        return out

    def execute_operator_command(self, payload: bytes, request_index: int) -> list[ExecutionUpdate]:
        try:
            command = ec.decode_command(payload)
        except CommandDecodeError:
            raise CommandRefused("malformed_command") from None
        if not isinstance(command, ec.OPERATOR_COMMANDS):
            raise CommandRefused("not_an_operator_command")
        return [route(u, request_index) for u in self.engine.apply(command)]

    def epoch(self) -> int:
        return self.engine.epoch

    def last_ordinal(self) -> int:
        return self.engine.ordinal - 1

    def state_root(self) -> bytes:
        return self.engine.state_root()

    def snapshot(self) -> bytes:
        return self.engine.snapshot()

    def restore(self, data: bytes) -> None:
        self.engine = Engine.restore(data)

    # ------------------------------------------------------------ ExchangeView

    def book(self, market: bytes) -> dict | None:
        m = self.engine.markets.get(market)
        if m is None:
            return None

        def levels(side: int, prices) -> list[list[str]]:
            out = []
            for price in prices:
                level = m.book.levels[side].get(price)
                if level is None:
                    continue
                size = sum(o.remaining for o in level[0])
                if size:
                    out.append([str(price), str(size)])
                if len(out) >= BOOK_DEPTH:
                    break
            return out

        return {
            "market": "0x" + market.hex(),
            "bids": levels(ec.BUY, reversed(m.book.bid_prices)),
            "asks": levels(ec.SELL, m.book.ask_prices),
            "index": str(m.index),
            "mark": str(m.mark),
        }

    def trader_state(self, trader: bytes) -> dict:
        """Looked up by key (trader's strategies x listed tokens), never by scanning every account."""
        e = self.engine
        t = e.traders.get(trader)
        tokens = sorted(e.ledgers)
        accounts = []
        if t is not None:
            for strategy in sorted(t.strategies):
                accounts.extend(a for a in (e.accounts.get(trader + strategy + token) for token in tokens) if a is not None)
        strategies, positions, orders = [], [], []
        for account in accounts:
            strategies.append({"strategy": "0x" + account.strategy.hex(), "token": checksum_address(account.token), "collateral": str(account.collateral)})
            for market_id, p in sorted(account.positions.items()):
                if p.size:
                    positions.append({
                        "strategy": "0x" + account.strategy.hex(), "market": "0x" + market_id.hex(),
                        "size": str(p.size), "cost": str(p.cost), "realizedPnl": str(p.realized),
                    })
            for o in sorted(account.orders.values(), key=lambda o: o.seq):
                if o.remaining:
                    orders.append({
                        "orderHash": "0x" + o.id.hex(), "strategy": "0x" + account.strategy.hex(), "market": "0x" + o.market.id.hex(),
                        "side": o.side, "price": str(o.price), "remaining": str(o.remaining), "original": str(o.original),
                    })
        balances = []
        for token in tokens:
            leaf = e.withdrawals.get(trader + token)
            if leaf is not None:
                balances.append({"token": checksum_address(token), "withdrawable": str(leaf.amount)})
        return {
            "trader": checksum_address(trader),
            "known": t is not None,
            "strategies": strategies,
            "positions": positions,
            "balances": balances,
            "openOrders": orders,
        }

    def _epoch_proofs(self, trader: bytes, token: bytes, epoch: int | None) -> dict:
        """The engine's proofs of both leaves against `epoch`'s frozen root (None: the latest frozen epoch), or
        {"error", "detail"}."""
        e = self.engine
        if not e.epoch_trees:
            return {"error": "no_frozen_epoch", "detail": "no epoch has been frozen yet"}
        try:
            return e.epoch_proofs(max(e.epoch_trees) if epoch is None else epoch, trader, token)
        except UnknownEpochError as exc:
            return {"error": "unknown_epoch", "detail": str(exc)}

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        proofs = self._epoch_proofs(trader, token, epoch)
        if "error" in proofs:
            return proofs
        value = proofs["withdrawal_value"]
        return {
            "epoch": proofs["epoch"],
            "root": "0x" + proofs["root"].hex(),
            "trader": checksum_address(trader),
            "token": checksum_address(token),
            "included": value is not None,
            "cumulative": str(int.from_bytes(value[-32:], "big")) if value is not None else "0",
            "proof": proofs["withdrawal"].to_json(),
        }

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        """The BALANCE(trader, token) leaf the escape hatch pays from (protocol §2): `amount` and `deposited`, with
        an inclusion proof, or (0, 0) with a non-inclusion proof when the pair has no leaf."""
        proofs = self._epoch_proofs(trader, token, epoch)
        if "error" in proofs:
            return proofs
        value = proofs["balance_value"]  # abi.encode(uint8 8, trader, token, amount, deposited)
        return {
            "epoch": proofs["epoch"],
            "root": "0x" + proofs["root"].hex(),
            "trader": checksum_address(trader),
            "token": checksum_address(token),
            "included": value is not None,
            "amount": str(int.from_bytes(value[-64:-32], "big")) if value is not None else "0",
            "deposited": str(int.from_bytes(value[-32:], "big")) if value is not None else "0",
            "proof": proofs["balance"].to_json(),
        }
