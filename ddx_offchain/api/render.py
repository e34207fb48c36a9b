"""The JSON the API speaks, rendered in one place from the node's typed values (docs/api.md, api/openapi.json).

Everything below the API passes typed values (engine updates, applied entries, views); this module is the only
place they become JSON documents, with one form per type (docs/protocol.md §7.0): every integer a decimal string
(JSON numbers lose precision above 2^53, and signed messages use that form too), every address EIP-55
checksummed, every other byte string `0x` + lower-case hex, booleans as JSON booleans; reason names beside
reason codes. Operator diagnostics (/v1/status, /readyz, checkpoint progress) are not exchange data and keep
JSON numbers.
"""

from __future__ import annotations

from typing import Any

from ..chain.inbox_report import InboxReport
from ..engine.commands import BUY
from ..engine.reasons import CancelReason, Reject
from ..engine.updates import CANCELLED, FILLED, OPEN, Fill, OrderUpdate, Rejected, Update
from ..node.account import AccountView
from ..node.market_data import BookDelta, Candle, DayStats, FundingPayment, FundingRecord, L2Book, Trade
from ..node.state_machine import AppliedEntry, ExecutionUpdate
from ..node.views import BalanceProof, BookView, MarketView, OrderView, TraderView, WithdrawalProof
from ..protocol.eip712 import checksum_address
from ..protocol.names import readable_name


def hex0x(value: bytes) -> str:
    return "0x" + value.hex()


def symbol(id32: bytes) -> str | None:
    """A market's (or strategy's) readable name beside its hex id; null when the id is not a readable name."""
    return readable_name(id32)


def integer(value: int | None) -> str | None:
    """An integer as the API writes it (None stays null)."""
    return None if value is None else str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return checksum_address(value) if len(value) == 20 else hex0x(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)  # JSON numbers lose precision above 2^53
    return value


def update_data(update: Update) -> dict[str, Any]:
    """The `data` of an execution update: its fields but the ordinal, `type`, and a reason name beside a code."""
    data = {name: _json_value(getattr(update, name)) for name in update.__struct_fields__ if name != "ordinal"}
    data["type"] = type(update).__name__
    if isinstance(update, Rejected):
        data["reasonName"] = Reject(update.reason).name.lower()
    elif isinstance(update, OrderUpdate):
        data["reasonName"] = CancelReason(update.reason).name.lower()
    return data


def update_doc(routed: ExecutionUpdate) -> dict[str, Any]:
    """One item of `GET /v1/updates` (and, with `"type": "update"`, one WebSocket feed message)."""
    return {
        "ordinal": integer(routed.ordinal),
        "requestIndex": integer(routed.request_index),
        "kind": routed.kind,
        "traders": [checksum_address(t) for t in routed.traders],
        "market": None if routed.market is None else hex0x(routed.market),
        "data": update_data(routed.update),
    }


def feed_message(routed: ExecutionUpdate) -> dict[str, Any]:
    return {"type": "update", **update_doc(routed)}


def request_doc(applied: AppliedEntry) -> dict[str, Any]:
    """One item of the request log (`GET /v1/requests`): an applied entry's outcome, without its updates."""
    out: dict[str, Any] = {
        "requestIndex": integer(applied.request_index),
        "logIndex": integer(applied.log_index),
        "status": applied.status,
        "epoch": integer(applied.epoch),
        "entry": hex0x(applied.entry),
    }
    if applied.request_hash is not None:
        out["requestHash"] = hex0x(applied.request_hash)
    if applied.reason is not None:
        out["reason"] = applied.reason
    if applied.duplicate_of is not None:
        out["duplicateOf"] = integer(applied.duplicate_of)
    return out


# ---------------------------------------------------------------------------------------------- views


def book_doc(book: BookView) -> dict[str, Any]:
    """`GET /v1/books/{market}`: levels as [price, size] decimal strings, best first."""
    return {
        "market": hex0x(book.market),
        "symbol": symbol(book.market),
        "bids": [[str(level.price), str(level.size)] for level in book.bids],
        "asks": [[str(level.price), str(level.size)] for level in book.asks],
        "index": str(book.index),
        "mark": str(book.mark),
    }


def order_doc(o: OrderView) -> dict[str, Any]:
    """An open order, in `GET /v1/traders/{trader}` (`openOrders`) and `GET /v1/orders/…`."""
    return {
        "orderHash": hex0x(o.order_hash),
        "strategy": hex0x(o.strategy),
        "market": hex0x(o.market),
        "symbol": symbol(o.market),
        "side": o.side,
        "orderType": o.order_type,
        "price": str(o.price),
        "remaining": str(o.remaining),
        "original": str(o.original),
        "reduceOnly": o.reduce_only,
        "clientOrderId": hex0x(o.client_order_id),
        "expiry": str(o.expiry_ms),
    }


def trader_doc(view: TraderView) -> dict[str, Any]:
    """`GET /v1/traders/{trader}`."""
    return {
        "trader": checksum_address(view.trader),
        "known": view.known,
        "strategies": [
            {
                "strategy": hex0x(s.strategy),
                "token": checksum_address(s.token),
                "collateral": str(s.collateral),
                "unrealizedPnl": str(s.unrealized_pnl),
                "equity": str(s.equity),
                "initialMargin": str(s.initial_margin),
                "maintenanceMargin": str(s.maintenance_margin),
                "freeCollateral": str(s.free_collateral),
            }
            for s in view.strategies
        ],
        "positions": [
            {
                "strategy": hex0x(p.strategy),
                "market": hex0x(p.market),
                "symbol": symbol(p.market),
                "size": str(p.size),
                "cost": str(p.cost),
                "realizedPnl": str(p.realized_pnl),
                "mark": str(p.mark),
                "unrealizedPnl": str(p.unrealized_pnl),
            }
            for p in view.positions
        ],
        # `balances` is the historical name of `withdrawable` (kept for old clients): claimable, not collateral
        "balances": [{"token": checksum_address(b.token), "withdrawable": str(b.withdrawable)} for b in view.balances],
        "withdrawable": [{"token": checksum_address(b.token), "withdrawable": str(b.withdrawable)} for b in view.balances],
        "openOrders": [order_doc(o) for o in view.open_orders],
        "triggers": [
            {
                "triggerId": hex0x(g.trigger_id),
                "strategy": hex0x(g.strategy),
                "market": hex0x(g.market),
                "symbol": symbol(g.market),
                "side": str(g.side),
                "direction": str(g.direction),
                "triggerPrice": str(g.trigger_price),
                "orderType": str(g.order_type),
                "price": str(g.price),
                "size": str(g.size),
                "reduceOnly": g.reduce_only,
                "attached": g.attached,
                "group": hex0x(g.group),
                "clientOrderId": hex0x(g.client_order_id),
            }
            for g in view.triggers
        ],
        "twaps": [
            {
                "twapId": hex0x(w.twap_id),
                "strategy": hex0x(w.strategy),
                "market": hex0x(w.market),
                "symbol": symbol(w.market),
                "side": str(w.side),
                "size": str(w.size),
                "executed": str(w.executed),
                "slicesDone": str(w.slices_done),
                "slices": str(w.slices),
                "nextSlice": str(w.next_slice_ms),
                "interval": str(w.interval_ms),
                "limitPrice": str(w.limit_price),
                "reduceOnly": w.reduce_only,
            }
            for w in view.twaps
        ],
        "agents": [
            {
                "agent": checksum_address(a.agent),
                "strategy": hex0x(a.strategy),
                "scope": str(a.scope),
                "validFrom": str(a.valid_from_ms),
                "expiry": str(a.expiry_ms),
                "expired": a.expired,
            }
            for a in view.agents
        ],
    }


def market_doc(view: MarketView, token_decimals: int | None = None) -> dict[str, Any]:
    """`GET /v1/markets/{market}`: parameters (integers, bps) and live state; big numbers as decimal strings.
    `symbol` beside the id; `tokenDecimals` (the collateral's decimals: a price is in its base units per whole
    contract) when the node knows them, else null."""
    out: dict[str, Any] = {}
    for name in MarketView.__dataclass_fields__:
        value = getattr(view, name)
        key = _camel(name)
        if name == "token":
            out[key] = checksum_address(value)
            out["tokenDecimals"] = integer(token_decimals)
        else:
            out[key] = _json_value(value)
        if name == "market":
            out["symbol"] = symbol(value)
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def proof_doc(leaf: WithdrawalProof | BalanceProof) -> dict[str, Any]:
    """`GET /v1/proofs/withdrawal/...` and `/v1/proofs/balance/...`: the leaf's amounts and its proof (§4 form)."""
    out: dict[str, Any] = {
        "epoch": integer(leaf.epoch),
        "root": hex0x(leaf.root),
        "trader": checksum_address(leaf.trader),
        "token": checksum_address(leaf.token),
        "included": leaf.included,
    }
    if isinstance(leaf, WithdrawalProof):
        out["cumulative"] = str(leaf.cumulative)
    else:
        out["amount"] = str(leaf.amount)
        out["deposited"] = str(leaf.deposited)
    out["proof"] = leaf.proof.to_json()
    return out


def checkpoint_doc(epoch: int, root: bytes, stage: str, detail: dict) -> dict[str, Any]:
    """One item of `GET /v1/checkpoints` (`detail`: the epoch's progress diagnostics, as /v1/status shows them)."""
    return {"epoch": integer(epoch), "root": hex0x(root), "stage": stage, "detail": detail}


def inbox_doc(report: InboxReport) -> dict:
    """GET /v1/inbox (chain/inbox_report.py InboxReport)."""

    def cursor(c) -> dict:
        return {"deposits": integer(c.deposits), "forced": integer(c.forced), "acc": hex0x(c.acc)}

    return {
        "contract": cursor(report.contract),
        "engine": cursor(report.engine),
        "covered": report.covered,
        "pendingSince": integer(report.pending_since),
        "forcedDeadline": integer(report.forced_deadline),
        "freezeDueAt": integer(report.freeze_due_at),
        "frozen": report.frozen,
        "pendingForced": [
            {
                "seq": integer(f.seq),
                "trader": checksum_address(f.trader),
                "requestType": integer(f.request_type),
                "block": integer(f.block_number),
                "deadline": integer(f.deadline),
            }
            for f in report.pending_forced
        ],
    }


# ---------------------------------------------------------------------------------------------- market data

STATUS_NAMES = {OPEN: "open", FILLED: "filled", CANCELLED: "cancelled"}


def markets_doc(views: list[MarketView]) -> dict[str, Any]:
    """`GET /v1/markets`: every market's specs and live state, as `GET /v1/markets/{market}`, plus its symbol."""
    return {"markets": [{"symbol": symbol(v.market)} | market_doc(v) for v in views]}


def ticker_doc(view: MarketView, stats: DayStats, best: tuple[int | None, int | None]) -> dict[str, Any]:
    """One ticker: prices, the 24 h window of sequenced time, open interest and funding."""
    change = None if stats.open is None or stats.last is None else stats.last - stats.open
    return {
        "market": hex0x(view.market),
        "symbol": symbol(view.market),
        "time": integer(stats.time),
        "index": str(view.index),
        "mark": str(view.mark),
        "last": integer(stats.last),
        "bestBid": integer(best[0]),
        "bestAsk": integer(best[1]),
        "open24h": integer(stats.open),
        "high24h": integer(stats.high),
        "low24h": integer(stats.low),
        "change24h": integer(change),
        "volume24h": str(stats.volume),
        "quoteVolume24h": str(stats.quote_volume),
        "trades24h": str(stats.trades),
        "openInterest": str(view.open_interest),
        "fundingPerUnit": str(view.last_funding_per_unit),
        "predictedFundingPerUnit": str(view.predicted_funding_per_unit),
        "nextFundingTime": str(view.next_funding_ms),
        "fundingIntervalMs": str(view.funding_interval_ms),
    }


def trade_doc(t: Trade) -> dict[str, Any]:
    return {
        "id": str(t.ordinal),
        "time": str(t.time),
        "price": str(t.price),
        "size": str(t.size),
        "notional": str(t.notional),
        "takerSide": "buy" if t.taker_side == BUY else "sell",
        "liquidation": t.liquidation,
    }


def candle_doc(c: Candle) -> list[str]:
    """[start, open, high, low, close, volume, quoteVolume, trades], decimal strings (ccxt's OHLCV order first)."""
    return [str(v) for v in (c.start, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades)]


def funding_record_doc(f: FundingRecord) -> dict[str, Any]:
    return {
        "ordinal": str(f.ordinal),
        "time": str(f.time),
        "perUnit": str(f.per_unit),
        "intervals": str(f.intervals),
        "paid": str(f.paid),
        "received": str(f.received),
    }


def l2_doc(book: L2Book) -> dict[str, Any]:
    """An L2 snapshot: levels [price, size] best first, its sequence number and the checksum of its top levels."""
    return {
        "market": hex0x(book.market),
        "seq": str(book.seq),
        "bids": [[str(p), str(z)] for p, z in book.bids],
        "asks": [[str(p), str(z)] for p, z in book.asks],
        "checksum": str(book.checksum),
    }


def book_delta_doc(delta: BookDelta) -> dict[str, Any]:
    """One WebSocket book delta: the changed levels with their new size ("0": gone), applied on `prevSeq`."""
    return {
        "type": "bookDelta",
        "market": hex0x(delta.market),
        "prevSeq": str(delta.prev_seq),
        "seq": str(delta.seq),
        "bids": [[str(p), str(z)] for p, z in delta.bids],
        "asks": [[str(p), str(z)] for p, z in delta.asks],
        "checksum": str(delta.checksum),
    }


def own_fill_doc(trader: bytes, routed: ExecutionUpdate) -> dict[str, Any]:
    """A Fill as one of its two sides sees it (a trader is never both: self-trades are prevented)."""
    f: Fill = routed.update  # type: ignore[assignment]
    maker = f.maker_trader == trader
    side = (1 - f.taker_side) if maker else f.taker_side
    return {
        "ordinal": str(f.ordinal),
        "market": hex0x(f.market),
        "strategy": hex0x(f.maker_strategy if maker else f.taker_strategy),
        "orderId": hex0x(f.maker_order if maker else f.taker_order),
        "role": "maker" if maker else "taker",
        "side": "buy" if side == BUY else "sell",
        "price": str(f.price),
        "size": str(f.size),
        "fee": str(f.maker_fee if maker else f.taker_fee),
        "liquidation": f.liquidation,
    }


def order_event_doc(routed: ExecutionUpdate) -> dict[str, Any]:
    """An order's state at one ordinal: open (resting, with what remains), filled or cancelled (with reason)."""
    o: OrderUpdate = routed.update  # type: ignore[assignment]
    return {
        "ordinal": str(o.ordinal),
        "orderId": hex0x(o.order_id),
        "strategy": hex0x(o.strategy),
        "market": hex0x(o.market),
        "side": "buy" if o.side == BUY else "sell",
        "price": str(o.price),
        "remaining": str(o.remaining),
        "status": STATUS_NAMES.get(o.status, str(o.status)),
        "reason": str(o.reason),
        "reasonName": CancelReason(o.reason).name.lower() if o.status == CANCELLED else None,
    }


def funding_payment_doc(p: FundingPayment) -> dict[str, Any]:
    return {
        "ordinal": str(p.ordinal),
        "time": str(p.time),
        "strategy": hex0x(p.strategy),
        "market": hex0x(p.market),
        "size": str(p.size),
        "perUnit": str(p.per_unit),
        "intervals": str(p.intervals),
        "amount": str(p.amount),
    }


def page_doc(items: list, next_cursor: int | None) -> dict[str, Any]:
    """A page of a trader's history, newest first: pass `next` as `before` for the following page (null: done)."""
    return {"items": items, "next": integer(next_cursor)}


def account_doc(view: AccountView) -> dict[str, Any]:
    """`GET /v1/traders/{trader}/account`: per strategy account its margin figures and positions."""
    return {
        "trader": checksum_address(view.trader),
        "known": view.known,
        "accounts": [
            {
                "strategy": hex0x(a.strategy),
                "token": checksum_address(a.token),
                "collateral": str(a.collateral),
                "unrealizedPnl": str(a.unrealized_pnl),
                "equity": str(a.equity),
                "initialMargin": str(a.initial_margin),
                "maintenanceMargin": str(a.maintenance_margin),
                "availableMargin": str(a.available_margin),
                "freeCollateral": str(a.free_collateral),
                "positions": [
                    {
                        "market": hex0x(p.market),
                        "side": "long" if p.size > 0 else "short",
                        "size": str(p.size),
                        "cost": str(p.cost),
                        "entryPrice": str(p.entry_price),
                        "mark": str(p.mark),
                        "notional": str(p.notional),
                        "unrealizedPnl": str(p.unrealized_pnl),
                        "realizedPnl": str(p.realized_pnl),
                        "initialMargin": str(p.initial_margin),
                        "maintenanceMargin": str(p.maintenance_margin),
                        "liquidationPrice": integer(p.liquidation_price),
                    }
                    for p in a.positions
                ],
            }
            for a in view.accounts
        ],
    }
