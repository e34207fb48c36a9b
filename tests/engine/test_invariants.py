"""Always-on invariant checks (TigerBeetle style): each fires, with EngineInvariantError, when the state it guards
is corrupted behind the engine's back. None can be triggered by input: that is what Rejected is for."""

from __future__ import annotations

import pytest
from engine_helpers import ETHP, Driver, trader, usd

from ddx_offchain.engine import book as bk
from ddx_offchain.engine.commands import BUY, MAIN_STRATEGY, SELL, AdvanceEpoch
from ddx_offchain.engine.errors import EngineInvariantError
from ddx_offchain.errors import DdxError

A, B = trader(1), trader(2)


def funded() -> Driver:
    d = Driver()
    d.deposit(A, usd(10_000))
    d.deposit(B, usd(10_000))
    d.price(usd(2_000))
    return d


def test_the_invariant_error_is_typed_and_survives_python_O():
    assert issubclass(EngineInvariantError, DdxError) and EngineInvariantError.reason == "engine_invariant"


def test_collateral_conservation_is_checked_at_every_epoch_freeze():
    d = funded()
    d.order(A, SELL, usd(2_000), 1_000_000)
    d.order(B, BUY, usd(2_000), 400_000)
    d.epoch()  # balanced: freezes
    assert d.engine.ledger_imbalance() == dict.fromkeys(d.engine.ledgers, 0)
    d.engine.accounts[A + MAIN_STRATEGY + next(iter(d.engine.ledgers))].collateral += 1  # money from nowhere
    with pytest.raises(EngineInvariantError, match="not conserved"):
        d.engine.apply(AdvanceEpoch(d.rid(), d.engine.epoch + 1))


def test_a_crossed_book_is_caught_when_an_order_rests():
    d = funded()
    d.order(A, SELL, usd(2_010), 100_000)
    d.engine.markets[ETHP].book.bid_prices.append(usd(2_020))  # a bid level above the ask, behind the book's back
    d.engine.markets[ETHP].book.levels[BUY][usd(2_020)] = [__import__("collections").deque(), 0]
    with pytest.raises(EngineInvariantError, match="crossed"):
        d.order(B, BUY, usd(1_990), 100_000)  # rests, and the book it rests in is crossed


def test_a_fill_of_nothing_is_caught():
    d = funded()
    d.order(A, SELL, usd(2_000), 100_000)
    d.order(B, BUY, usd(2_000), 100_000)
    pos = d.engine.accounts[A + MAIN_STRATEGY + next(iter(d.engine.ledgers))].positions[ETHP]
    with pytest.raises(EngineInvariantError, match="zero"):
        bk.apply_fill(pos, 0, 0)


def test_every_command_yields_a_verdict_first(monkeypatch):
    d = funded()
    handlers = dict(d.engine._handlers)
    handlers[AdvanceEpoch] = lambda command: None  # a handler that forgot to accept or reject
    monkeypatch.setattr(d.engine, "_handlers", handlers)
    with pytest.raises(EngineInvariantError, match="not Accepted or Rejected"):
        d.engine.apply(AdvanceEpoch(d.rid(), 1))
