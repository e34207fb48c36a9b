"""Engine snapshots (docs/engine.md, "Snapshots"): every state item plus the retained epochs' undo logs.

    snapshot = b"DDXENGIN" ‖ uint16 version ‖ uint64 payload length ‖ payload ‖ keccak256(payload)
    payload  = msgpack [root, [[key, value], …] sorted by key, [[epoch, [[key, value or nil], …]], …]]   (version 2)

An undo log holds, for every item changed after its epoch's freeze, the item's value at that freeze (nil: it did
not exist). Version 1 carried a whole tree snapshot per retained epoch instead; it is still read (converted into
undo logs on restore).

Restoring rebuilds every Python structure from the items alone, so a restore that works is itself the proof that
all state lives in the tree; the rebuilt tree's root must equal the recorded root. No pickle.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import msgspec

from ..protocol.hashing import keccak256, keccak256_chunked
from . import book as bk
from . import triggers, twap
from .codec import split_words, word_address, word_int, word_uint
from .commands import MarketParams
from .config import GenesisConfig
from .errors import SnapshotError
from .state import (
    FUND_TRADER,
    K_AGENT,
    K_BALANCE,
    K_EPOCH,
    K_FEE,
    K_FUND,
    K_FUNDING,
    K_MARKET,
    K_ORDER,
    K_POSITION,
    K_PRICE,
    K_SCHEDULE,
    K_STRATEGY,
    K_SYSTEM,
    K_TRADER,
    K_TRIGGER,
    K_TWAP,
    K_WITHDRAWAL,
    SYSTEM_CURSORS,
    SYSTEM_TOKEN,
    Account,
    Agent,
    EpochRecord,
    Market,
    Order,
    PairLeaf,
    Schedule,
    Trader,
    Trigger,
    Twap,
)
from .tree_port import load_tree, tree_from_items

MAGIC = b"DDXENGIN"
VERSION = 2
READABLE = (1, 2)
_HEADER = len(MAGIC) + 2 + 8


def capture(engine) -> Callable[[], bytes]:
    """The engine's state as of now, taken cheaply (dirty items flushed, then one copy of the item dict and of the
    undo logs); the returned function encodes it, on any thread, into exactly what `take` returns now.

    Encoding is split so that a thread running it never holds the GIL for long (the Raft runtime encodes on its
    snapshot thread while the event loop keeps heartbeating): items are sorted in 256 buckets by first key byte
    (the bucketing loop is Python, so it yields the GIL), each bucket is msgpack-encoded on its own and joined
    under one array header — the same bytes as encoding the whole sorted list at once — and the checksum is
    hashed in 1 MB pieces."""
    engine.flush()
    root = engine.tree.root()
    items = engine.tree.copy_items()
    undo = {e: dict(engine._undo[e]) for e in engine.retained_epochs}

    def encode() -> bytes:
        buckets: list[list[tuple[bytes, bytes]]] = [[] for _ in range(256)]
        for pair in items.items():
            buckets[pair[0][0]].append(pair)
        parts = [_array_header(3), _encoder.encode(root), _array_header(len(items))]
        for bucket in buckets:
            if bucket:
                bucket.sort()
                parts.append(_encoder.encode(bucket)[len(_array_header(len(bucket))) :])
        parts.append(_encoder.encode([[e, sorted(log.items())] for e, log in sorted(undo.items())]))
        payload = b"".join(parts)
        return MAGIC + VERSION.to_bytes(2, "big") + len(payload).to_bytes(8, "big") + payload + keccak256_chunked(payload)

    return encode


_encoder = msgspec.msgpack.Encoder()


def _array_header(n: int) -> bytes:
    """The msgpack array header msgspec writes for n elements (fixarray, array 16, array 32)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def take(engine) -> bytes:
    return capture(engine)()


def restore(cls, data: bytes):
    if not isinstance(data, (bytes, bytearray)) or len(data) < _HEADER + 32:
        raise SnapshotError("snapshot truncated")
    data = bytes(data)
    if data[:8] != MAGIC:
        raise SnapshotError("not an engine snapshot (bad magic)")
    version = int.from_bytes(data[8:10], "big")
    if version not in READABLE:
        raise SnapshotError(f"snapshot version {version}, this engine reads {READABLE}")
    length = int.from_bytes(data[10:18], "big")
    if len(data) != _HEADER + length + 32:
        raise SnapshotError("snapshot length does not match its header")
    payload = data[_HEADER : _HEADER + length]
    if keccak256(payload) != data[_HEADER + length :]:
        raise SnapshotError("snapshot checksum mismatch")
    try:
        if version == 1:
            root, items, trees = msgspec.msgpack.decode(
                payload, type=tuple[bytes, list[tuple[bytes, bytes]], list[tuple[int, bytes]]]
            )
            undo = _undo_from_trees(items, trees)
        else:
            root, items, logs = msgspec.msgpack.decode(
                payload, type=tuple[bytes, list[tuple[bytes, bytes]], list[tuple[int, list[tuple[bytes, bytes | None]]]]]
            )
            undo = {e: dict(log) for e, log in logs}
        engine = _rebuild(cls, items)
    except SnapshotError:
        raise
    except (msgspec.DecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise SnapshotError(f"snapshot content invalid: {exc}") from None
    engine.tree = tree_from_items(items)
    if engine.tree.root() != root:
        raise SnapshotError("rebuilt tree root differs from the recorded root")
    if engine.all_items() != [tuple(i) for i in items]:
        raise SnapshotError("items do not re-encode to themselves")
    engine._undo = undo
    engine._undo_open = undo[max(undo)] if undo else None
    for epoch in undo:
        if epoch not in engine.epochs:
            raise SnapshotError(f"an undo log for epoch {epoch}, which was never frozen")
    for obj in _all_objects(engine):
        obj.in_tree = True
    return engine


def _undo_from_trees(items, trees) -> dict[int, dict[bytes, bytes | None]]:
    """Version 1's retained trees as undo logs: each epoch's log turns the next state (the next retained epoch's,
    or today's for the latest) back into its own."""
    undo: dict[int, dict[bytes, bytes | None]] = {}
    later = dict(items)
    for epoch, tree_bytes in sorted(trees, reverse=True):
        frozen = dict(load_tree(tree_bytes).items())
        log = {key: frozen.get(key) for key in later.keys() | frozen.keys() if later.get(key) != frozen.get(key)}
        undo[epoch] = log
        later = frozen
    return undo


def _all_objects(engine):
    for m in engine.markets.values():
        yield m
        yield m.price_view
        yield m.funding_view
        yield from m.positions.values()
    for ledger in engine.ledgers.values():
        yield ledger
        yield ledger.fee_view
    yield from engine.accounts.values()
    yield from engine.traders.values()
    yield from engine.orders.values()
    yield from engine.withdrawals.values()
    yield from engine.balances.values()
    yield from engine.epochs.values()
    yield from engine.agents.values()
    yield from engine.schedules.values()
    yield from engine.triggers.values()
    yield from engine.twaps.values()


def _rebuild(cls, items):
    by_kind: dict[int, list] = {}
    for key, value in items:
        by_kind.setdefault(key[0], []).append(value)
    cursors = None
    ledgers = []
    for value in by_kind.get(K_SYSTEM, []):
        w = split_words(value, K_SYSTEM, 14) if word_uint(value[32:64]) == SYSTEM_CURSORS else \
            split_words(value, K_SYSTEM, 4)
        if word_uint(w[0]) == SYSTEM_CURSORS:
            cursors = w
        elif word_uint(w[0]) == SYSTEM_TOKEN:
            ledgers.append((word_address(w[1]), word_uint(w[2]), word_uint(w[3])))
        else:
            raise SnapshotError("unknown SYSTEM record")
    if cursors is None:
        raise SnapshotError("no SYSTEM cursors item")
    default_token = word_address(cursors[8])
    tokens = [default_token] + sorted(t for t, _, _ in ledgers if t != default_token)
    genesis = GenesisConfig(tokens=tuple(tokens), max_open_orders=word_uint(cursors[9]),
                            max_strategies=word_uint(cursors[10]), epochs_retained=word_uint(cursors[11]))
    engine = cls(genesis, _empty=True)
    engine.deposit_seq = word_uint(cursors[1])
    engine.forced_seq = word_uint(cursors[12])
    engine.inbox_acc = cursors[13]
    engine.block_number = word_uint(cursors[2])
    engine.block_hash = cursors[3]
    engine.time = word_uint(cursors[4])
    engine.epoch = word_uint(cursors[5])
    engine.ordinal = word_uint(cursors[6])
    engine.order_seq = word_uint(cursors[7])
    for token, deposited, withdrawable in ledgers:
        ledger = engine._add_token(token)
        ledger.deposited = deposited
        ledger.withdrawable = withdrawable
    engine.dirty.clear()
    for value in by_kind.get(K_FEE, []):
        w = split_words(value, K_FEE, 2)
        engine.ledgers[word_address(w[0])].fees = word_uint(w[1])
    for value in by_kind.get(K_FUND, []):
        w = split_words(value, K_FUND, 2)
        engine.ledgers[word_address(w[0])].fund.collateral = word_int(w[1])
    for value in by_kind.get(K_MARKET, []):
        w = split_words(value, K_MARKET, 17)
        u = [word_uint(x) for x in w]
        params = MarketParams(w[0], word_address(w[1]), *u[2:16], bool(u[16]))
        engine.markets[params.market] = Market(params)
    for value in by_kind.get(K_PRICE, []):
        w = split_words(value, K_PRICE, 4)
        m = engine.markets[w[0]]
        m.index, m.mark, m.price_time = word_uint(w[1]), word_uint(w[2]), word_uint(w[3])
    for value in by_kind.get(K_FUNDING, []):
        w = split_words(value, K_FUNDING, 4)
        m = engine.markets[w[0]]
        m.next_funding, m.last_funding, m.cumulative_funding = word_uint(w[1]), word_int(w[2]), word_int(w[3])
    counts = {}
    for value in by_kind.get(K_TRADER, []):
        w = split_words(value, K_TRADER, 3)
        trader = word_address(w[0])
        engine.traders[trader] = t = Trader(trader)
        t.created = word_uint(w[2])
        counts[trader] = word_uint(w[1])
    for value in by_kind.get(K_STRATEGY, []):
        w = split_words(value, K_STRATEGY, 4)
        a = Account(word_address(w[0]), w[1], word_address(w[2]))
        if a.token not in engine.ledgers:
            raise SnapshotError("strategy account in an unlisted token")
        a.collateral = word_int(w[3])
        engine.accounts[a.skey] = a
        engine.traders[a.trader].strategies.add(a.strategy)
    for trader, count in counts.items():
        if len(engine.traders[trader].strategies) != count:
            raise SnapshotError("TRADER strategy count disagrees with its STRATEGY items")
    for value in by_kind.get(K_POSITION, []):
        w = split_words(value, K_POSITION, 6)
        trader = word_address(w[0])
        m = engine.markets[w[2]]
        a = engine.ledgers[m.token].fund if trader == FUND_TRADER else engine.accounts[trader + w[1] + m.token]
        pos = engine._position(a, m)
        pos.size, pos.cost, pos.realized = word_int(w[3]), word_int(w[4]), word_int(w[5])
        bk.track(pos)
    orders = []
    for value in by_kind.get(K_ORDER, []):
        w = split_words(value, K_ORDER, 13)
        m = engine.markets[w[3]]
        a = engine.accounts[word_address(w[1]) + w[2] + m.token]
        u = [word_uint(x) for x in w[4:11]]
        orders.append(Order(w[0], a, m, u[0], u[1], u[2], u[3], u[4], u[5], bool(u[6]), w[11], word_uint(w[12])))
    orders.sort(key=lambda o: o.seq)
    for order in orders:
        bk.rest(order)
        engine.orders[order.id] = order
        order.account.orders[order.id] = order
        engine._index_order(order)
        pos = engine._position(order.account, order.market)
        if order.side == 0:
            pos.open_buy += order.remaining
        else:
            pos.open_sell += order.remaining
    for kind, table in ((K_WITHDRAWAL, engine.withdrawals), (K_BALANCE, engine.balances)):
        for value in by_kind.get(kind, []):
            w = split_words(value, kind, 4 if kind == K_BALANCE else 3)
            leaf = PairLeaf(kind, word_address(w[0]), word_address(w[1]))
            leaf.amount = word_uint(w[2])
            if kind == K_BALANCE:
                leaf.deposited = word_uint(w[3])
            table[leaf.trader + leaf.token] = leaf
    for value in by_kind.get(K_EPOCH, []):
        w = split_words(value, K_EPOCH, 4)
        record = EpochRecord(word_uint(w[0]), w[1], word_uint(w[2]), word_uint(w[3]))
        engine.epochs[record.epoch] = record
    for value in by_kind.get(K_AGENT, []):
        w = split_words(value, K_AGENT, 6)
        agent = Agent(word_address(w[0]), word_address(w[1]), w[2], word_uint(w[3]), word_uint(w[4]), word_uint(w[5]))
        engine.agents[agent.skey] = agent
        engine.agents_of.setdefault(agent.trader, set()).add(agent.skey)
    for value in by_kind.get(K_SCHEDULE, []):
        w = split_words(value, K_SCHEDULE, 4)
        s = Schedule(word_address(w[0]), w[1], w[2], word_uint(w[3]))
        engine.schedules[s.skey] = s
        engine.schedules_of[s.trader] = engine.schedules_of.get(s.trader, 0) + 1
        engine._due.append((s.time, s.skey))
    heapq.heapify(engine._due)
    for value in by_kind.get(K_TRIGGER, []):
        w = split_words(value, K_TRIGGER, 15)
        m = engine.markets[w[3]]
        a = engine.accounts[word_address(w[1]) + w[2] + m.token]
        u = [word_uint(x) for x in w[4:11]]
        t = Trigger(w[0], a, m, u[0], u[1], u[2], u[3], u[4], u[5], bool(u[6]), bool(word_uint(w[11])), w[12], w[13],
                    word_uint(w[14]))
        triggers.index(engine, t)
    for value in by_kind.get(K_TWAP, []):
        w = split_words(value, K_TWAP, 14)
        m = engine.markets[w[3]]
        a = engine.accounts[word_address(w[1]) + w[2] + m.token]
        u = [word_uint(x) for x in w[4:]]
        twap.index(engine, Twap(w[0], a, m, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], bool(u[8]), u[9]))
    engine.dirty.clear()
    return engine
