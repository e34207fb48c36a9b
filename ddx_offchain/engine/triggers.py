"""Trigger orders (docs/engine.md §4.8): stop-market, stop-limit, take-profit and stop-loss.

A trigger waits, as a TRIGGER item, until a sequenced price update moves its market's mark to its trigger price in
its direction; it then becomes the PlaceOrder it stands for, under its own id, validated and margin-checked at that
moment like any new order (nothing is reserved while it waits). Triggers attached to a position are cancelled as
soon as the position closes or flips; triggers of one group cancel each other when one fires. Functions take the
engine, as risk.py does; the indexes below are derived (rebuilt from the items on restore).
"""

from __future__ import annotations

import heapq

from .commands import BUY, LIMIT, LIMIT_IOC, MARKET, SELL, ZERO_ID, PlaceOrder
from .config import MAX_QUANTITY
from .reasons import CancelReason, Reject
from .state import Trigger
from .updates import TRIGGER_CANCELLED, TRIGGER_FIRED, TRIGGER_PLACED, TriggerUpdate

RISES_TO, FALLS_TO = 0, 1
_FIRED_ORDER_TYPES = (LIMIT, LIMIT_IOC, MARKET)


def reached(direction: int, mark: int, trigger_price: int) -> bool:
    return mark >= trigger_price if direction == RISES_TO else mark <= trigger_price


def _reduces(side: int, position_size: int) -> bool:
    """A sell reduces a long, a buy a short."""
    return position_size > 0 if side == SELL else position_size < 0


def place(engine, c) -> None:
    """The PlaceTrigger handler: validate, then store the trigger."""
    m = engine._trading_market(c)
    if m is None:
        return None
    if c.side not in (BUY, SELL) or c.direction not in (RISES_TO, FALLS_TO) or c.order_type not in _FIRED_ORDER_TYPES:
        return engine._reject(c, Reject.MALFORMED, "side and direction are 0 or 1, the order type limit, IOC or market")
    if type(c.trigger_price) is not int or not 0 < c.trigger_price <= MAX_QUANTITY or c.trigger_price % m.tick:
        return engine._reject(c, Reject.BAD_PRICE, "trigger price must be a positive multiple of the tick")
    if c.order_type == MARKET:
        if c.price:
            return engine._reject(c, Reject.BAD_PRICE, "a market order carries price 0")
    elif type(c.price) is not int or not 0 < c.price <= MAX_QUANTITY or c.price % m.tick:
        return engine._reject(c, Reject.BAD_PRICE, "price must be a positive multiple of the tick")
    if type(c.size) is not int or c.size < 0 or c.size > MAX_QUANTITY or c.size % m.lot or (not c.size and not c.attached):
        return engine._reject(c, Reject.BAD_SIZE, "size must be a multiple of the lot (0 only on an attached trigger)")
    account = engine.accounts.get(c.trader + c.strategy + m.token)
    if account is None:
        return engine._reject(c, Reject.UNKNOWN_STRATEGY, "strategy has no account in the market's token")
    tid = c.request_id
    if type(tid) is not bytes or len(tid) != 32 or tid in engine.orders or tid in engine.triggers:
        return engine._reject(c, Reject.DUPLICATE_ORDER_ID, "an open order or trigger already has this id")
    if type(c.group) is not bytes or len(c.group) != 32 or type(c.client_order_id) is not bytes \
            or len(c.client_order_id) != 32:
        return engine._reject(c, Reject.MALFORMED, "group and client_order_id are bytes32")
    if c.client_order_id != ZERO_ID and c.trader + c.strategy + c.client_order_id in engine.client_ids:
        return engine._reject(c, Reject.DUPLICATE_CLIENT_ORDER_ID, "an open order has this client order id")
    if c.attached:
        if not c.reduce_only:
            return engine._reject(c, Reject.MALFORMED, "an attached trigger is reduce-only")
        pos = account.positions.get(m.id)
        if pos is None or not _reduces(c.side, pos.size):
            return engine._reject(c, Reject.NO_POSITION_TO_ATTACH, "no position on the side this trigger reduces")
    if reached(c.direction, m.mark, c.trigger_price):
        return engine._reject(c, Reject.TRIGGER_ALREADY_REACHED, f"the mark {m.mark} is already there")
    if len(engine.triggers_of.get(account.skey, ())) >= engine.max_open_orders:
        return engine._reject(c, Reject.TOO_MANY_TRIGGERS, "trigger limit reached")
    engine._accept(c)
    seq = engine.order_seq
    engine.order_seq = seq + 1
    t = Trigger(tid, account, m, c.side, c.direction, c.trigger_price, c.order_type, c.price, c.size,
                bool(c.reduce_only), bool(c.attached), c.group, c.client_order_id, seq)
    index(engine, t)
    engine.dirty.add(t)
    _emit(engine, t, TRIGGER_PLACED, 0)


def index(engine, t: Trigger) -> None:
    a = t.account
    engine.triggers[t.id] = t
    engine.triggers_of.setdefault(a.skey, set()).add(t.id)
    rises, falls = engine.trigger_heaps.setdefault(t.market.id, ([], []))
    if t.direction == RISES_TO:
        heapq.heappush(rises, (t.trigger_price, t.seq, t.id))
    else:
        heapq.heappush(falls, (-t.trigger_price, t.seq, t.id))
    if t.group != ZERO_ID:
        engine.trigger_groups.setdefault(a.trader + a.strategy + t.group, set()).add(t.id)
    if t.attached:
        engine.attached.setdefault(a.skey + t.market.id, set()).add(t.id)
    if t.client_order_id != ZERO_ID:
        engine.client_ids[a.trader + a.strategy + t.client_order_id] = t.id


def _unindex(engine, t: Trigger) -> None:
    a = t.account
    del engine.triggers[t.id]
    _discard(engine.triggers_of, a.skey, t.id)
    if t.group != ZERO_ID:
        _discard(engine.trigger_groups, a.trader + a.strategy + t.group, t.id)
    if t.attached:
        _discard(engine.attached, a.skey + t.market.id, t.id)
    if t.client_order_id != ZERO_ID:
        key = a.trader + a.strategy + t.client_order_id
        if engine.client_ids.get(key) == t.id:
            del engine.client_ids[key]
    # its heap entry stays and is skipped when popped (no such trigger any more)


def _discard(table: dict, key: bytes, tid: bytes) -> None:
    ids = table[key]
    ids.discard(tid)
    if not ids:
        del table[key]


def _emit(engine, t: Trigger, status: int, reason: int) -> None:
    a = t.account
    engine._emit(TriggerUpdate, t.id, a.trader, a.strategy, t.market.id, t.side, t.direction, t.trigger_price, t.size,
                 status, reason, t.client_order_id)


def remove(engine, t: Trigger, status: int, reason: int) -> None:
    _unindex(engine, t)
    t.gone = True
    engine.dirty.add(t)
    _emit(engine, t, status, reason)


def cancel(engine, t: Trigger, reason: CancelReason) -> None:
    remove(engine, t, TRIGGER_CANCELLED, int(reason))


def of_account(engine, account, market: bytes) -> list[Trigger]:
    """The account's triggers in `market` (zero: all), oldest first."""
    ids = engine.triggers_of.get(account.skey, ())
    found = [engine.triggers[i] for i in ids]
    return sorted((t for t in found if market == ZERO_ID or t.market.id == market), key=lambda t: t.seq)


def fire_due(engine, markets) -> None:
    """After a price update: in market id order, every trigger its market's new mark reached fires, oldest first.
    A trigger removed by an earlier one (its group, its closed position) no longer fires."""
    heaps = engine.trigger_heaps
    for m in sorted(markets, key=lambda m: m.id):
        pair = heaps.get(m.id)
        if pair is None:
            continue
        rises, falls = pair
        mark = m.mark
        due = []
        while rises and rises[0][0] <= mark:
            due.append(heapq.heappop(rises))
        while falls and -falls[0][0] >= mark:
            due.append(heapq.heappop(falls))
        for _, seq, tid in sorted(due, key=lambda entry: entry[1]):
            t = engine.triggers.get(tid)
            if t is not None and t.seq == seq:
                _fire(engine, t)
        if not rises and not falls:
            del heaps[m.id]


def _fire(engine, t: Trigger) -> None:
    a = t.account
    remove(engine, t, TRIGGER_FIRED, 0)
    if t.group != ZERO_ID:
        mates = engine.trigger_groups.get(a.trader + a.strategy + t.group, ())
        for mate in sorted((engine.triggers[i] for i in mates), key=lambda x: x.seq):
            cancel(engine, mate, CancelReason.GROUP_FIRED)
    size = t.size
    if t.attached and not size:
        pos = a.positions.get(t.market.id)
        held = pos.size if pos is not None else 0
        size = held if held > 0 else -held
    command = PlaceOrder(t.id, a.trader, a.strategy, t.market.id, t.side, t.order_type, t.price, size, t.reduce_only,
                         t.client_order_id, 0)
    engine._handle(engine._place_order, command)


def position_changed(engine, pos) -> None:
    """Attached triggers of a position that closed or flipped (their side no longer reduces it) are cancelled."""
    ids = engine.attached.get(pos.account.skey + pos.market.id)
    if not ids:
        return
    for t in sorted((engine.triggers[i] for i in ids), key=lambda x: x.seq):
        if not _reduces(t.side, pos.size):
            cancel(engine, t, CancelReason.POSITION_CLOSED)
