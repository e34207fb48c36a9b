"""Execution updates: what `Engine.apply` returns, each with a global ordinal (1, 2, …, never reused).

Every command yields first `Accepted` or `Rejected`, then (if accepted) the state changes it caused, in the order
they happened. Money fields are token base units; `collateral` is the strategy's cash (docs/engine.md, "Accounts").
`msgspec.json.encode(update)` gives the wire form (the `type` field names the struct).
"""

from __future__ import annotations

import msgspec


class Update(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag=True):
    ordinal: int


class Accepted(Update, frozen=True, gc=False, tag=True):
    request_id: bytes
    command: str


class Rejected(Update, frozen=True, gc=False, tag=True):
    request_id: bytes
    command: str
    reason: int  # reasons.Reject
    detail: str


class OrderUpdate(Update, frozen=True, gc=False, tag=True):
    order_id: bytes
    trader: bytes
    strategy: bytes
    market: bytes
    side: int
    price: int
    remaining: int
    status: int  # OPEN, FILLED or CANCELLED below
    reason: int  # reasons.CancelReason when CANCELLED
    client_order_id: bytes = b"\x00" * 32  # the trader's own id for the order (zero: none)


OPEN, FILLED, CANCELLED = 0, 1, 2


class Fill(Update, frozen=True, gc=False, tag=True):
    market: bytes
    maker_order: bytes
    taker_order: bytes  # the liquidated strategy's pseudo-order id (zero) in a liquidation
    maker_trader: bytes
    maker_strategy: bytes
    taker_trader: bytes
    taker_strategy: bytes
    taker_side: int
    price: int
    size: int
    maker_fee: int
    taker_fee: int
    liquidation: bool


class PositionUpdate(Update, frozen=True, gc=False, tag=True):
    trader: bytes
    strategy: bytes
    market: bytes
    size: int  # signed: > 0 long
    cost: int  # signed cost basis; average entry = cost * 10**size_decimals / size
    realized_pnl: int  # realized since the position was opened


class StrategyUpdate(Update, frozen=True, gc=False, tag=True):
    trader: bytes
    strategy: bytes
    token: bytes
    collateral: int


class StrategyCreated(Update, frozen=True, gc=False, tag=True):
    trader: bytes
    strategy: bytes


class DepositCredited(Update, frozen=True, gc=False, tag=True):
    seq: int
    trader: bytes
    strategy: bytes
    token: bytes
    amount: int


class DepositIgnored(Update, frozen=True, gc=False, tag=True):
    """A deposit of a token the engine has not listed (allow-listed on-chain first): sequenced, credited to no one;
    the escape hatch returns it (the contract counted it, no BALANCE leaf does). Listing the token later does not
    credit it retroactively."""

    seq: int
    trader: bytes
    strategy: bytes
    token: bytes
    amount: int


class WithdrawalUpdate(Update, frozen=True, gc=False, tag=True):
    trader: bytes
    strategy: bytes
    token: bytes
    amount: int
    cumulative: int  # the WITHDRAWAL leaf value after this intent


class FeeUpdate(Update, frozen=True, gc=False, tag=True):
    token: bytes
    fees: int


class InsuranceUpdate(Update, frozen=True, gc=False, tag=True):
    token: bytes
    collateral: int


class PriceUpdate(Update, frozen=True, gc=False, tag=True):
    market: bytes
    index: int
    mark: int


class Liquidation(Update, frozen=True, gc=False, tag=True):
    trader: bytes
    strategy: bytes
    token: bytes
    equity: int
    maintenance_margin: int


class Takeover(Update, frozen=True, gc=False, tag=True):
    """Positions left after the book were taken by the insurance fund (or by ADL counterparties) at bankruptcy."""

    trader: bytes
    strategy: bytes
    token: bytes
    by_insurance_fund: bool
    transferred_equity: int  # the liquidated strategy's remaining equity moved to the taker(s), may be negative


class Deleverage(Update, frozen=True, gc=False, tag=True):
    market: bytes
    trader: bytes  # the liquidated (or insolvent fund) side
    strategy: bytes
    counterparty_trader: bytes
    counterparty_strategy: bytes
    size: int
    mark: int
    equity_share: int


class FundingPaid(Update, frozen=True, gc=False, tag=True):
    market: bytes
    intervals: int
    per_unit: int  # funding per whole contract per interval; > 0: longs pay shorts
    paid: int
    received: int
    to_insurance: int  # the rounding remainder


class MarketUpdate(Update, frozen=True, gc=False, tag=True):
    market: bytes
    listed: bool  # True on listing, False on a parameter change


class TokenListed(Update, frozen=True, gc=False, tag=True):
    token: bytes


class BlockApplied(Update, frozen=True, gc=False, tag=True):
    block_number: int
    block_hash: bytes
    last_deposit_seq: int


class TimeAdvanced(Update, frozen=True, gc=False, tag=True):
    time_ms: int


class EpochFrozen(Update, frozen=True, gc=False, tag=True):
    epoch: int
    root: bytes


class AgentUpdate(Update, frozen=True, gc=False, tag=True):
    """An agent approval written (approved: True) or ended (revoked: approved False)."""

    trader: bytes
    agent: bytes
    strategy: bytes  # zero: every strategy of the trader
    scope: int
    valid_from: int  # the agent's requests must carry a timestamp at or after this (ms)
    expiry: int
    approved: bool


class TriggerUpdate(Update, frozen=True, gc=False, tag=True):
    """A trigger placed (status 0), fired (1: its order's Accepted or Rejected and effects follow, under the same id)
    or cancelled (2, reason a CancelReason)."""

    trigger_id: bytes
    trader: bytes
    strategy: bytes
    market: bytes
    side: int
    direction: int
    trigger_price: int
    size: int  # 0 on an attached trigger: the whole position
    status: int
    reason: int
    client_order_id: bytes


TRIGGER_PLACED, TRIGGER_FIRED, TRIGGER_CANCELLED = 0, 1, 2


class TwapUpdate(Update, frozen=True, gc=False, tag=True):
    """A TWAP's progress: placed (status 0), a slice run (1: its order's verdict and effects follow, under
    `slice_id`), finished (2: every slice run) or cancelled (3, reason a CancelReason)."""

    twap_id: bytes
    trader: bytes
    strategy: bytes
    market: bytes
    side: int
    size: int
    executed: int  # filled so far
    slices_done: int
    slices: int
    status: int
    reason: int
    slice_id: bytes  # the order id of the slice run (status 1), else zero


TWAP_PLACED, TWAP_SLICE, TWAP_FINISHED, TWAP_CANCELLED = 0, 1, 2, 3


class Transferred(Update, frozen=True, gc=False, tag=True):
    """Collateral moved between two strategies of a trader (their StrategyUpdates follow)."""

    trader: bytes
    from_strategy: bytes
    to_strategy: bytes
    token: bytes
    amount: int


class CancelScheduled(Update, frozen=True, gc=False, tag=True):
    """A scheduled cancel set (status 0), cleared (1) or fired (2: its OrderUpdates, reason SCHEDULED, follow)."""

    trader: bytes
    strategy: bytes  # zero: every strategy
    market: bytes  # zero: every market
    time: int
    status: int


SCHEDULE_SET, SCHEDULE_CLEARED, SCHEDULE_FIRED = 0, 1, 2


class ForcedRequestApplied(Update, frozen=True, gc=False, tag=True):
    """A forced request (from the L1 inbox) was taken: after its own Accepted or Rejected and effects, this names
    its trader and outcome (reason 0: accepted; else reasons.Reject). Taken either way: it counts as processed."""

    seq: int
    trader: bytes
    request_type: int
    request_id: bytes
    reason: int
    detail: str
