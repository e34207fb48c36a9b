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
from ..engine.reasons import CancelReason, Reject
from ..engine.updates import OrderUpdate, Rejected, Update
from ..node.state_machine import AppliedEntry, ExecutionUpdate
from ..node.views import BalanceProof, BookView, MarketView, TraderView, WithdrawalProof
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
        "balances": [{"token": checksum_address(b.token), "withdrawable": str(b.withdrawable)} for b in view.balances],
        "openOrders": [
            {
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
            }
            for o in view.open_orders
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
