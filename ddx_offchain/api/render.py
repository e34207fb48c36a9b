"""The JSON the API speaks, rendered in one place from the node's typed values (docs/api.md, api/openapi.json).

Everything below the API passes typed values (engine updates, applied entries, views); this module is the only
place they become JSON documents: hex strings for bytes, decimal strings for integers that can exceed 2^53,
checksummed addresses where docs/api.md says so, reason names beside reason codes.
"""

from __future__ import annotations

from typing import Any

from ..chain.inbox_report import InboxReport
from ..engine.reasons import CancelReason, Reject
from ..engine.updates import OrderUpdate, Rejected, Update
from ..node.state_machine import AppliedEntry, ExecutionUpdate
from ..node.views import BalanceProof, BookView, MarketView, TraderView, WithdrawalProof
from ..protocol.eip712 import checksum_address


def hex0x(value: bytes) -> str:
    return "0x" + value.hex()


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return hex0x(value)
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
        "ordinal": routed.ordinal,
        "requestIndex": routed.request_index,
        "kind": routed.kind,
        "traders": [hex0x(t) for t in routed.traders],
        "market": None if routed.market is None else hex0x(routed.market),
        "data": update_data(routed.update),
    }


def feed_message(routed: ExecutionUpdate) -> dict[str, Any]:
    return {"type": "update", **update_doc(routed)}


def request_doc(applied: AppliedEntry) -> dict[str, Any]:
    """One item of the request log (`GET /v1/requests`): an applied entry's outcome, without its updates."""
    out: dict[str, Any] = {
        "requestIndex": applied.request_index,
        "logIndex": applied.log_index,
        "status": applied.status,
        "epoch": applied.epoch,
        "entry": hex0x(applied.entry),
    }
    if applied.request_hash is not None:
        out["requestHash"] = hex0x(applied.request_hash)
    if applied.reason is not None:
        out["reason"] = applied.reason
    if applied.duplicate_of is not None:
        out["duplicateOf"] = applied.duplicate_of
    return out


# ---------------------------------------------------------------------------------------------- views


def book_doc(book: BookView) -> dict[str, Any]:
    """`GET /v1/books/{market}`: levels as [price, size] decimal strings, best first."""
    return {
        "market": hex0x(book.market),
        "bids": [[str(level.price), str(level.size)] for level in book.bids],
        "asks": [[str(level.price), str(level.size)] for level in book.asks],
        "index": str(book.index),
        "mark": str(book.mark),
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
                "size": str(p.size),
                "cost": str(p.cost),
                "realizedPnl": str(p.realized_pnl),
                "mark": str(p.mark),
                "unrealizedPnl": str(p.unrealized_pnl),
            }
            for p in view.positions
        ],
        "balances": [{"token": checksum_address(b.token), "withdrawable": str(b.withdrawable)} for b in view.balances],
        "openOrders": [
            {
                "orderHash": hex0x(o.order_hash),
                "strategy": hex0x(o.strategy),
                "market": hex0x(o.market),
                "side": o.side,
                "orderType": o.order_type,
                "price": str(o.price),
                "remaining": str(o.remaining),
                "original": str(o.original),
                "reduceOnly": o.reduce_only,
            }
            for o in view.open_orders
        ],
    }


def market_doc(view: MarketView) -> dict[str, Any]:
    """`GET /v1/markets/{market}`: parameters (integers, bps) and live state; big numbers as decimal strings."""
    out: dict[str, Any] = {}
    for name in MarketView.__dataclass_fields__:
        value = getattr(view, name)
        key = _camel(name)
        if name == "token":
            out[key] = checksum_address(value)
        else:
            out[key] = _json_value(value)
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def proof_doc(leaf: WithdrawalProof | BalanceProof) -> dict[str, Any]:
    """`GET /v1/proofs/withdrawal/...` and `/v1/proofs/balance/...`: the leaf's amounts and its proof (§4 form)."""
    out: dict[str, Any] = {
        "epoch": leaf.epoch,
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


def inbox_doc(report: InboxReport) -> dict:
    """GET /v1/inbox (chain/inbox_report.py InboxReport)."""

    def cursor(c) -> dict:
        return {"deposits": c.deposits, "forced": c.forced, "acc": hex0x(c.acc)}

    return {
        "contract": cursor(report.contract),
        "engine": cursor(report.engine),
        "covered": report.covered,
        "pendingSince": report.pending_since,
        "forcedDeadline": report.forced_deadline,
        "freezeDueAt": report.freeze_due_at,
        "frozen": report.frozen,
        "pendingForced": [
            {
                "seq": f.seq,
                "trader": checksum_address(f.trader),
                "requestType": f.request_type,
                "block": f.block_number,
                "deadline": f.deadline,
            }
            for f in report.pending_forced
        ],
    }
