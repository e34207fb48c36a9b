"""The engine behind the node: wire request -> engine command, engine updates -> routed execution updates, and
the read-only views the API serves (node/views.py).

Operator-command entries (tag 0x02) must decode to an *operator* command: a trader command there would carry no
trader signature, so it is refused before the engine sees it.
"""

from __future__ import annotations

import asyncio

from ..engine import commands as ec
from ..engine.engine import Engine
from ..engine.errors import CommandDecodeError
from ..engine.updates import Update
from ..protocol import requests as pr
from . import views
from .account import AccountView, account_view
from .state_machine import CommandRefused, ExecutionUpdate

_TRADER_FIELDS = ("trader", "maker_trader", "taker_trader", "counterparty_trader")


def route(update: Update, request_index: int, trader: bytes | None = None, market: bytes | None = None) -> ExecutionUpdate:
    """`update` with the traders and market it concerns. `Accepted`/`Rejected` name only the request: a trader
    request's go to its `trader` and `market`."""
    traders = tuple(dict.fromkeys(getattr(update, f) for f in _TRADER_FIELDS if hasattr(update, f)))
    if not traders and trader is not None:
        return ExecutionUpdate(request_index, update, (trader,), market)
    return ExecutionUpdate(request_index, update, traders, getattr(update, "market", None))


class EngineAdapter:
    """ExecutionEngine + ExchangeView over `Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._request_traders: dict[bytes, bytes] = {}

    # ------------------------------------------------------------ ExecutionEngine

    def execute_request(self, signed: pr.SignedRequest, request_index: int) -> list[ExecutionUpdate]:
        trader, market = signed.request.trader, getattr(signed.request, "market", None)
        command = ec.from_request(signed.request, signed.request_hash)
        return [route(u, request_index, trader, market) for u in self.engine.apply(command)]

    def execute_operator_command(self, payload: bytes, request_index: int) -> list[ExecutionUpdate]:
        try:
            command = ec.decode_command(payload)
        except CommandDecodeError:
            raise CommandRefused("malformed_command") from None
        if not isinstance(command, ec.OPERATOR_COMMANDS):
            raise CommandRefused("not_an_operator_command")
        return [route(u, request_index) for u in self.engine.apply(command)]

    def epoch(self) -> int:
        return self.engine.epoch

    def agent_problem(self, trader: bytes, agent: bytes, strategy: bytes, timestamp: int) -> str | None:
        return self.engine.agent_problem(trader, agent, strategy, timestamp)

    def last_ordinal(self) -> int:
        return self.engine.ordinal - 1

    def state_root(self) -> bytes:
        return self.engine.state_root()

    def snapshot(self) -> bytes:
        return self.engine.snapshot()

    def capture(self):
        return self.engine.capture()

    def restore(self, data: bytes) -> None:
        self.engine = Engine.restore(data)

    # ------------------------------------------------------------ ExchangeView

    def book(self, market: bytes) -> views.BookView | None:
        return views.book_view(self.engine, market)

    def trader(self, trader: bytes) -> views.TraderView:
        return views.trader_view(self.engine, trader)

    def market(self, market: bytes) -> views.MarketView | None:
        return views.market_view(self.engine, market)

    def markets(self) -> list[views.MarketView]:
        return views.markets_view(self.engine)

    def open_order(self, order_hash=None, *, trader=None, strategy=None, client_order_id=None):
        return views.open_order_view(self.engine, order_hash, trader, strategy, client_order_id)

    def account(self, trader: bytes) -> AccountView:
        return account_view(self.engine, trader)

    def market_data_seed(self) -> views.MarketDataSeed:
        return views.market_data_seed(self.engine)

    async def prepare_proofs(self, epoch: int | None) -> None:
        """Rebuild `epoch`'s tree (None: the latest retained) on a worker thread if it is not cached yet, so the
        first proof of an epoch does not hold the event loop for the rebuild (seconds on a large state)."""
        e = self.engine
        epoch = epoch if epoch is not None else (e.retained_epochs[-1] if e.retained_epochs else None)
        if epoch is None or epoch not in e.retained_epochs or e.has_epoch_tree(epoch):
            return  # nothing to prove against, or ready: the proof call says which
        tree = await asyncio.to_thread(e.epoch_tree_builder(epoch))
        if epoch in self.engine.retained_epochs:  # still retained (an epoch may have been frozen meanwhile)
            self.engine.keep_epoch_tree(epoch, tree)

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> views.WithdrawalProof:
        return views.withdrawal_proof(self.engine, trader, token, epoch)

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> views.BalanceProof:
        return views.balance_proof(self.engine, trader, token, epoch)
