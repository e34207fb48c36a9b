"""History: applied requests, execution updates and checkpoints in SQLite, written off the hot path.

The apply path only appends to a list; one writer thread takes the whole list every FLUSH_SECONDS (or when
asked) and writes it in one transaction, so the apply path never wakes a thread or waits on the GIL for it. History is a cache of
consensus data for the API (request log, receipts by hash, update replay for feeds): losing the file loses no
consensus state, and re-applying the Raft log after a restart rewrites what it covers (writes are idempotent).
The schema is versioned with `PRAGMA user_version`; MIGRATIONS only ever grows. Rows are stored and read back
as typed values (applied entries, engine updates: the engine's own msgspec encoding); the API renders JSON.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Union

import msgspec

from ..engine import updates as eu
from ..errors import DdxError
from ..protocol.requests import ENTRY_OPERATOR_COMMAND
from .market_data import FundingPayment
from .state_machine import DUPLICATE, AppliedEntry, ExecutionUpdate

log = logging.getLogger("ddx.history")

MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: requests and updates
    """
    CREATE TABLE requests (
        request_index INTEGER PRIMARY KEY,
        log_index     INTEGER NOT NULL,
        request_hash  BLOB,
        trader        BLOB,
        nonce         INTEGER,
        status        TEXT NOT NULL,
        reason        TEXT,
        duplicate_of  INTEGER,
        epoch         INTEGER NOT NULL,
        entry         BLOB NOT NULL
    );
    CREATE INDEX requests_by_hash ON requests(request_hash);
    CREATE TABLE updates (
        ordinal       INTEGER PRIMARY KEY,
        request_index INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        traders       BLOB NOT NULL,
        market        BLOB,
        data          TEXT NOT NULL
    );
    CREATE INDEX updates_by_market ON updates(market, ordinal);
    CREATE TABLE update_traders (
        trader  BLOB NOT NULL,
        ordinal INTEGER NOT NULL,
        PRIMARY KEY (trader, ordinal)
    ) WITHOUT ROWID;
    """,
    # 2: checkpoint progress per epoch (filled by the checkpointer)
    """
    CREATE TABLE checkpoints (
        epoch      INTEGER PRIMARY KEY,
        root       BLOB NOT NULL,
        stage      TEXT NOT NULL,
        detail     TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 3: updates.data holds the engine's typed encoding of the update (msgspec JSON: its struct, tagged by `type`)
    # instead of the API's rendering; existing rows are converted (_typed_update_rows)
    lambda conn: _typed_update_rows(conn),
    # 4: each position's share of a FundingPaid (node/market_data.py derives them from the update stream)
    """
    CREATE TABLE funding_payments (
        trader    BLOB NOT NULL,
        ordinal   INTEGER NOT NULL,
        strategy  BLOB NOT NULL,
        market    BLOB NOT NULL,
        time      INTEGER NOT NULL,
        size      TEXT NOT NULL,
        per_unit  TEXT NOT NULL,
        intervals INTEGER NOT NULL,
        amount    TEXT NOT NULL,
        PRIMARY KEY (trader, ordinal, strategy)
    ) WITHOUT ROWID;
    """,
)

FLUSH_SECONDS = 0.02
UPDATE_TYPES: tuple[type[eu.Update], ...] = tuple(eu.Update.__subclasses__())
# The writer thread holds the GIL while it encodes, so its encoding is taken from the apply path's CPU: msgspec
# encodes a typed update several times faster than building and dumping a dict.
_update_encoder = msgspec.json.Encoder()
_update_decoder = msgspec.json.Decoder(Union[UPDATE_TYPES])  # type: ignore[valid-type]


def _encode_update(update: eu.Update) -> str:
    return _update_encoder.encode(update).decode()


def _legacy_update(ordinal: int, data: dict) -> eu.Update:
    """An update stored by schema 2 (the API's rendering: hex bytes, decimal-string integers) as its typed value."""
    cls = next(c for c in UPDATE_TYPES if c.__name__ == data["type"])
    fields = {"ordinal": ordinal}
    for field in msgspec.structs.fields(cls):
        if field.name == "ordinal":
            continue
        value = data[field.name]
        if field.type is bytes:
            value = bytes.fromhex(value[2:])
        elif field.type is int:
            value = int(value)
        fields[field.name] = value
    return cls(**fields)


def _typed_update_rows(conn: sqlite3.Connection) -> None:
    rows = conn.execute("SELECT ordinal, data FROM updates").fetchall()
    conn.executemany(
        "UPDATE updates SET data = ? WHERE ordinal = ?",
        [(_encode_update(_legacy_update(ordinal, json.loads(data))), ordinal) for ordinal, data in rows],
    )


class HistoryVersionError(DdxError, RuntimeError):
    """The history file was written by a newer node (its schema version is beyond MIGRATIONS)."""

    reason = "history_too_new"


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # history is re-derivable from Raft: no fsync per commit needed
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version; returns it. Refuses a file newer than this code."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise HistoryVersionError(f"history schema version {version} is newer than this node ({len(MIGRATIONS)})")
    for number in range(version, len(MIGRATIONS)):
        migration: str | Callable[[sqlite3.Connection], None] = MIGRATIONS[number]
        conn.execute("BEGIN")
        if callable(migration):
            migration(conn)
        else:
            # executescript() would commit on its own; statements run one by one so a migration is all or nothing
            for statement in migration.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    return len(MIGRATIONS)


class History:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._write = connect(self.path)
        self.schema_version = migrate(self._write)
        self._read = threading.local()
        self._pending: list = []
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self.persisted_ordinal = self._max("SELECT MAX(ordinal) FROM updates")
        self.persisted_request_index = self._max("SELECT MAX(request_index) FROM requests")
        self.enqueued = 0
        self.written = 0
        self.failed = False
        self._thread = threading.Thread(target=self._run, name="ddx-history", daemon=True)
        self._thread.start()

    def _max(self, sql: str) -> int:
        return self._write.execute(sql).fetchone()[0] or 0

    # ------------------------------------------------------------ writes (apply path: enqueue only)

    def record(self, applied: AppliedEntry) -> None:
        self.enqueued += 1
        self._pending.append(applied)  # a list append: atomic under the GIL, no thread wake-up

    def record_checkpoint(self, epoch: int, root: bytes, stage: str, detail: dict) -> None:
        self._pending.append(("checkpoint", epoch, root, stage, json.dumps(detail, sort_keys=True)))

    def record_funding(self, payments: list[FundingPayment]) -> None:
        """Funding payments derived from an applied entry (node/market_data.py): written with the entries."""
        if payments:
            self._pending.append(("funding", payments))

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything recorded so far is written (tests, shutdown)."""
        done = threading.Event()
        self._pending.append(done)
        self._wake.set()
        done.wait(timeout)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(10)
        self._write.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    self._write_batch([b for b in batch if not isinstance(b, threading.Event)])
                except Exception:
                    self.failed = True
                    log.exception("history write failed (consensus state is unaffected)")
                for b in batch:
                    if isinstance(b, threading.Event):
                        b.set()
            if self._stopping and not self._pending:
                return

    def _write_batch(self, batch: list) -> None:
        if not batch:
            return
        requests, updates, parties, checkpoints, funding = [], [], [], [], []
        for item in batch:
            if isinstance(item, tuple):
                if item[0] == "funding":
                    funding.extend(
                        (f.trader, f.ordinal, f.strategy, f.market, f.time, str(f.size), str(f.per_unit), f.intervals, str(f.amount))
                        for f in item[1]
                    )
                else:
                    checkpoints.append(item[1:])
                continue
            a: AppliedEntry = item
            requests.append(
                (a.request_index, a.log_index, a.request_hash, a.sender, a.nonce, a.status, a.reason, a.duplicate_of, a.epoch, a.entry)
            )
            for u in a.updates:
                updates.append((u.ordinal, u.request_index, u.kind, b"".join(u.traders), u.market, _encode_update(u.update)))
                parties.extend((t, u.ordinal) for t in u.traders)
        conn = self._write
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO requests VALUES (?,?,?,?,?,?,?,?,?,?)", requests)
        conn.executemany("INSERT OR REPLACE INTO updates VALUES (?,?,?,?,?,?)", updates)
        conn.executemany("INSERT OR REPLACE INTO update_traders VALUES (?,?)", parties)
        conn.executemany("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)", checkpoints)
        conn.executemany("INSERT OR REPLACE INTO funding_payments VALUES (?,?,?,?,?,?,?,?,?)", funding)
        conn.execute("COMMIT")
        with self._lock:
            if updates:
                self.persisted_ordinal = max(self.persisted_ordinal, max(u[0] for u in updates))
            if requests:
                self.persisted_request_index = max(self.persisted_request_index, max(r[0] for r in requests))
            self.written += len(requests)

    # ------------------------------------------------------------ reads (any thread; one connection per thread)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._read, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._read.conn = conn
        return conn

    def receipt_fields(self, request_hash: bytes) -> tuple[bytes, int, int, bytes, int] | None:
        """(request_hash, request_index, epoch, trader, nonce) of the sequenced request with this hash."""
        row = self._reader().execute(
            "SELECT request_index, status, duplicate_of, epoch, trader, nonce FROM requests "
            "WHERE request_hash = ? AND status IN ('sequenced', 'duplicate') ORDER BY request_index LIMIT 1",
            (request_hash,),
        ).fetchone()
        if row is None:
            return None
        index, status, duplicate_of, epoch, trader, nonce = row
        return (request_hash, duplicate_of if status == DUPLICATE else index, epoch, trader, nonce)

    def accepted_operator_commands(self, below: int) -> list[tuple[int, bytes]]:
        """(request index, entry) of every operator command below request index `below` that the engine accepted,
        in log order: what the chain side re-reads after a snapshot skipped those entries."""
        rows = self._reader().execute(
            "SELECT r.request_index, r.entry FROM requests r WHERE r.request_index < ? AND substr(r.entry, 1, 1) = ? "
            "AND EXISTS (SELECT 1 FROM updates u WHERE u.request_index = r.request_index AND u.kind = 'Accepted') "
            "ORDER BY r.request_index",
            (below, bytes([ENTRY_OPERATOR_COMMAND])),
        )
        return [(index, bytes(entry)) for index, entry in rows]

    def missing_requests(self, upto: int) -> int:
        """How many request indexes 1..upto history lacks (0 when it is whole up to there)."""
        if upto <= 0:
            return 0
        count = self._reader().execute("SELECT COUNT(*) FROM requests WHERE request_index <= ?", (upto,)).fetchone()[0]
        return upto - count

    def contiguous_requests(self) -> int:
        """The largest n such that history holds every request 1..n (a binary search over counts)."""
        reader = self._reader()
        lo = 0
        hi = reader.execute("SELECT COALESCE(MAX(request_index), 0) FROM requests").fetchone()[0]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if reader.execute("SELECT COUNT(*) FROM requests WHERE request_index <= ?", (mid,)).fetchone()[0] == mid:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def requests(self, first: int, last: int) -> list[AppliedEntry]:
        """Applied entries first..last as recorded, without their updates (`updates()` has those)."""
        rows = self._reader().execute(
            "SELECT request_index, log_index, entry, status, epoch, request_hash, trader, nonce, reason, duplicate_of "
            "FROM requests WHERE request_index BETWEEN ? AND ? ORDER BY request_index",
            (first, last),
        ).fetchall()
        return [AppliedEntry(*row) for row in rows]

    def updates(
        self, after: int, limit: int, *, trader: bytes | None = None, market: bytes | None = None, upto: int | None = None,
        kinds: tuple[str, ...] | None = None,
    ) -> list[ExecutionUpdate]:
        sql = "SELECT request_index, data, traders, market FROM updates WHERE ordinal > ?"
        args: list = [after]
        if kinds is not None:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args.extend(kinds)
        if trader is not None:
            sql += " AND ordinal IN (SELECT ordinal FROM update_traders WHERE trader = ? AND ordinal > ?)"
            args.extend((trader, after))
        if upto is not None:
            sql += " AND ordinal <= ?"
            args.append(upto)
        if market is not None:
            sql += " AND market = ?"
            args.append(market)
        sql += " ORDER BY ordinal LIMIT ?"
        args.append(limit)
        return [
            ExecutionUpdate(request_index, _update_decoder.decode(data), _split(traders), market_)
            for request_index, data, traders, market_ in self._reader().execute(sql, args).fetchall()
        ]

    def latest_updates(self, kinds: tuple[str, ...], upto: int, limit: int) -> list[ExecutionUpdate]:
        """The newest `limit` updates of these kinds with ordinal <= `upto`, in ordinal order."""
        rows = self._reader().execute(
            f"SELECT request_index, data, traders, market FROM updates WHERE ordinal <= ? AND kind IN ({','.join('?' * len(kinds))}) "
            "ORDER BY ordinal DESC LIMIT ?",
            (upto, *kinds, limit),
        ).fetchall()
        return [
            ExecutionUpdate(request_index, _update_decoder.decode(data), _split(traders), market_)
            for request_index, data, traders, market_ in reversed(rows)
        ]

    def trader_updates(self, trader: bytes, kinds: tuple[str, ...], before: int | None, limit: int) -> list[ExecutionUpdate]:
        """The trader's updates of these kinds with ordinal < `before` (None: all), newest first."""
        sql = (
            "SELECT u.request_index, u.data, u.traders, u.market FROM update_traders t JOIN updates u ON u.ordinal = t.ordinal "
            f"WHERE t.trader = ? AND t.ordinal < ? AND u.kind IN ({','.join('?' * len(kinds))}) ORDER BY t.ordinal DESC LIMIT ?"
        )
        args = [trader, 2**63 - 1 if before is None else before, *kinds, limit]
        return [
            ExecutionUpdate(request_index, _update_decoder.decode(data), _split(traders), market_)
            for request_index, data, traders, market_ in self._reader().execute(sql, args).fetchall()
        ]

    def funding_payments(self, trader: bytes, before: int | None, limit: int) -> list[FundingPayment]:
        """The trader's funding payments with ordinal < `before` (None: all), newest first."""
        rows = self._reader().execute(
            "SELECT ordinal, time, trader, strategy, market, size, per_unit, intervals, amount FROM funding_payments "
            "WHERE trader = ? AND ordinal < ? ORDER BY ordinal DESC, strategy LIMIT ?",
            (trader, 2**63 - 1 if before is None else before, limit),
        ).fetchall()
        if rows and len(rows) == limit:  # a page ends on a whole funding event (one row per strategy holding)
            last = rows[-1]
            rows += self._reader().execute(
                "SELECT ordinal, time, trader, strategy, market, size, per_unit, intervals, amount FROM funding_payments "
                "WHERE trader = ? AND ordinal = ? AND strategy > ? ORDER BY strategy",
                (trader, last[0], last[3]),
            ).fetchall()
        return [
            FundingPayment(o, t, bytes(tr), bytes(st), bytes(m), int(z), int(p), i, int(a))
            for o, t, tr, st, m, z, p, i, a in rows
        ]

    def checkpoints(self, limit: int = 50) -> list[tuple[int, bytes, str, dict]]:
        """The newest `limit` checkpoints, newest first: (epoch, root, stage, progress detail)."""
        rows = self._reader().execute("SELECT epoch, root, stage, detail FROM checkpoints ORDER BY epoch DESC LIMIT ?", (limit,))
        return [(e, bytes(r), s, json.loads(d)) for e, r, s, d in rows]


def _split(traders: bytes) -> tuple[bytes, ...]:
    return tuple(traders[i : i + 20] for i in range(0, len(traders), 20))

