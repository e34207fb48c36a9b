"""History in SQLite: migrations, idempotent off-path writes, receipts and the request log from disk."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
from fakes import RecordingEngine

from ddx_offchain.node.history import MIGRATIONS, History, migrate
from ddx_offchain.node.state_machine import ExchangeStateMachine
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.requests import PlaceOrder, encode_entry, market_id, sign_request, strategy_id

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)
KEY = b"\x11" * 32
T0 = 1_700_000_000_000


def entries(n: int) -> list[bytes]:
    return [
        encode_entry(sign_request(PlaceOrder(address_of(KEY), strategy_id("main"), market_id("ETHP"), 0, 0, 100, 1, False, i, T0), DOMAIN, KEY))
        for i in range(n)
    ]


def test_migrations_run_once_in_order_and_refuse_a_newer_file(tmp_path):
    path = tmp_path / "h.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)  # idempotent
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"requests", "updates", "checkpoints"} <= tables
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        migrate(conn)


def test_applied_entries_are_written_and_rewriting_is_idempotent(tmp_path):
    history = History(tmp_path / "h.sqlite")
    machine = ExchangeStateMachine(DOMAIN, RecordingEngine())
    log = entries(5) + [entries(1)[0]]  # the last is a duplicate of the first
    applied = [machine.apply(i + 1, e) for i, e in enumerate(log)]
    for a in applied + applied[:3]:  # replay after a restart writes some again
        history.record(a)
    history.flush()
    assert history.persisted_request_index == 6 and history.persisted_ordinal == 5
    rows = history.requests(1, 100)
    assert rows == [dataclasses.replace(a, updates=[]) for a in applied]  # typed, as applied (updates apart)
    assert [r.request_index for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[5].status == "duplicate" and rows[5].duplicate_of == 1
    fields = history.receipt_fields(applied[0].request_hash)
    assert fields == (applied[0].request_hash, 1, 0, address_of(KEY), 0)
    updates = history.updates(2, 10)
    assert updates == [u for a in applied for u in a.updates][2:]  # typed updates, routed as they were
    assert [u.ordinal for u in updates] == [3, 4, 5]
    assert history.updates(0, 10, trader=b"\x00" * 20) == []
    history.close()
    reopened = History(tmp_path / "h.sqlite")  # state survives, schema untouched
    assert reopened.persisted_ordinal == 5 and reopened.requests(6, 6)[0].status == "duplicate"
    reopened.close()


def test_a_failing_history_never_stops_apply(tmp_path):
    history = History(tmp_path / "h.sqlite")
    history._write.execute("DROP TABLE updates")  # simulate a broken file
    machine = ExchangeStateMachine(DOMAIN, RecordingEngine())
    a = machine.apply(1, entries(1)[0])
    history.record(a)
    history.flush()
    assert history.failed
    history.close()


def test_schema_2_rows_are_converted_to_typed_updates(tmp_path):
    """Schema 2 stored the API's rendering of each update; migration 3 turns those rows into typed ones."""
    from ddx_offchain.api.render import update_data
    from ddx_offchain.engine.updates import Fill, Rejected

    path = tmp_path / "h.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for number in range(2):  # the schema as a node of the previous version left it
        for statement in MIGRATIONS[number].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    trader = b"\x01" * 20
    old = [
        Fill(7, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32, trader, b"\x05" * 32, trader, b"\x05" * 32, 1,
             2**70, 3, -4, 5, True),
        Rejected(8, b"\x06" * 32, "PlaceOrder", 4, "no price"),
    ]
    for u in old:
        data = json.dumps(update_data(u))  # what schema 2 wrote: hex bytes, decimal strings, reason names
        conn.execute("INSERT INTO updates VALUES (?,?,?,?,?,?)", (u.ordinal, 1, type(u).__name__, trader, None, data))
    conn.close()
    history = History(path)
    try:
        assert history.schema_version == len(MIGRATIONS) == 4
        assert [u.update for u in history.updates(0, 10)] == old
    finally:
        history.close()
