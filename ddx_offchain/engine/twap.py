"""TWAP orders (docs/engine.md §4.9): a size worked over sequenced time in immediate-or-cancel slices.

Slice k (0-based, of n = duration // interval) is due at start + k × interval, start being the sequenced time the
TWAP was placed at; slice 0 runs at once. A slice asks for what the schedule calls for up to and including slice k —
floor(lots × (k + 1) / n) lots — less what the TWAP has filled, so an unfilled slice is caught up by the next ones;
an AdvanceTime that jumps over several due times runs one slice, for the latest of them. Each slice is the PlaceOrder
(IOC at the limit price, or a market order) under the id keccak256(twap_id ‖ uint256 k), validated and margin-checked
like any order. Functions take the engine, as risk.py does; the heap is derived.
"""

from __future__ import annotations

import heapq

from ..protocol.requests import MAX_TWAP_SLICES, batch_action_id
from .commands import BUY, LIMIT_IOC, MARKET, SELL, ZERO_ID, PlaceOrder
from .config import MAX_QUANTITY
from .reasons import CancelReason, Reject
from .state import Twap
from .updates import TWAP_CANCELLED, TWAP_FINISHED, TWAP_PLACED, TWAP_SLICE, Fill, TwapUpdate

MAX_TWAPS = 8  # running TWAPs per strategy account
MIN_INTERVAL_MS = 1_000


def slice_id(twap_id: bytes, k: int) -> bytes:
    """The order id of slice k: keccak256(twap_id ‖ uint256 k) (the batch action id formula)."""
    return batch_action_id(twap_id, k)


def place(engine, c) -> None:
    m = engine._trading_market(c, priced=False)  # a slice needs the price, not the TWAP: slices check it
    if m is None:
        return None
    if c.side not in (BUY, SELL):
        return engine._reject(c, Reject.MALFORMED, "side is 0 (buy) or 1 (sell)")
    if type(c.size) is not int or not 0 < c.size <= MAX_QUANTITY or c.size % m.lot:
        return engine._reject(c, Reject.BAD_SIZE, "size must be a positive multiple of the lot")
    if type(c.interval) is not int or type(c.duration) is not int or not MIN_INTERVAL_MS <= c.interval <= c.duration \
            or c.duration // c.interval > MAX_TWAP_SLICES:
        return engine._reject(c, Reject.BAD_TWAP, f"1 s <= interval <= duration, at most {MAX_TWAP_SLICES} slices")
    if type(c.limit_price) is not int or not 0 <= c.limit_price <= MAX_QUANTITY or c.limit_price % m.tick:
        return engine._reject(c, Reject.BAD_TWAP, "the limit price is 0 (market slices) or a multiple of the tick")
    account = engine.accounts.get(c.trader + c.strategy + m.token)
    if account is None:
        return engine._reject(c, Reject.UNKNOWN_STRATEGY, "strategy has no account in the market's token")
    tid = c.request_id
    if type(tid) is not bytes or len(tid) != 32 or tid in engine.twaps or tid in engine.orders:
        return engine._reject(c, Reject.DUPLICATE_ORDER_ID, "a TWAP or order already has this id")
    if len(engine.twaps_of.get(account.skey, ())) >= MAX_TWAPS:
        return engine._reject(c, Reject.TOO_MANY_TWAPS, f"at most {MAX_TWAPS} running TWAPs per strategy")
    engine._accept(c)
    seq = engine.order_seq
    engine.order_seq = seq + 1
    t = Twap(tid, account, m, c.side, c.size, 0, engine.time, c.interval, c.duration // c.interval, 0,
             c.limit_price, bool(c.reduce_only), seq)
    index(engine, t)
    engine.dirty.add(t)
    _emit(engine, t, TWAP_PLACED, 0, ZERO_ID)
    run_slice(engine, t)


def index(engine, t: Twap) -> None:
    engine.twaps[t.id] = t
    engine.twaps_of.setdefault(t.account.skey, set()).add(t.id)
    heapq.heappush(engine.twap_due, (t.due, t.seq, t.id))


def _emit(engine, t: Twap, status: int, reason: int, sid: bytes) -> None:
    a = t.account
    engine._emit(TwapUpdate, t.id, a.trader, a.strategy, t.market.id, t.side, t.size, t.executed, t.next_slice,
                 t.slices, status, reason, sid)


def _end(engine, t: Twap, status: int, reason: int) -> None:
    del engine.twaps[t.id]
    ids = engine.twaps_of[t.account.skey]
    ids.discard(t.id)
    if not ids:
        del engine.twaps_of[t.account.skey]
    t.gone = True
    engine.dirty.add(t)
    _emit(engine, t, status, reason, ZERO_ID)


def cancel(engine, t: Twap, reason: CancelReason) -> None:
    _end(engine, t, TWAP_CANCELLED, int(reason))


def of_account(engine, account, market: bytes) -> list[Twap]:
    ids = engine.twaps_of.get(account.skey, ())
    found = (engine.twaps[i] for i in ids)
    return sorted((t for t in found if market == ZERO_ID or t.market.id == market), key=lambda t: t.seq)


def run_due(engine) -> None:
    """At an AdvanceTime: every TWAP with a due slice runs one, by (due time, seq)."""
    heap = engine.twap_due
    now = engine.time
    due = []
    while heap and heap[0][0] <= now:
        due.append(heapq.heappop(heap))
    for when, seq, tid in due:
        t = engine.twaps.get(tid)
        if t is not None and t.due == when and t.seq == seq:
            run_slice(engine, t)


def run_slice(engine, t: Twap) -> None:
    """Run the latest due slice (catching up the missed ones), then schedule the next or finish."""
    k = t.next_slice
    if t.interval:
        k = max(k, min(t.slices - 1, (engine.time - t.start) // t.interval))
    lots = t.size // t.market.lot
    target = lots * (k + 1) // t.slices * t.market.lot
    want = target - t.executed
    sid = slice_id(t.id, k)
    t.next_slice = k + 1
    engine.dirty.add(t)
    if want > 0:
        _emit(engine, t, TWAP_SLICE, 0, sid)
        a = t.account
        order_type, price = (LIMIT_IOC, t.limit_price) if t.limit_price else (MARKET, 0)
        start = len(engine.out)
        engine._handle(engine._place_order, PlaceOrder(sid, a.trader, a.strategy, t.market.id, t.side, order_type,
                                                       price, want, t.reduce_only))
        t.executed += sum(u.size for u in engine.out[start:] if type(u) is Fill and u.taker_order == sid)
    if t.next_slice >= t.slices:
        _end(engine, t, TWAP_FINISHED, 0)
    else:
        heapq.heappush(engine.twap_due, (t.due, t.seq, t.id))
