"""Read-only views the API serves from the node's live state (the engine adapter implements ExchangeView)."""

from __future__ import annotations

from typing import Protocol


class ExchangeView(Protocol):
    def book(self, market: bytes) -> dict | None:
        """{"market", "bids": [[price, size], …], "asks": …} best first, as decimal strings; None: no such market."""
        ...

    def trader_state(self, trader: bytes) -> dict:
        """{"strategies": […], "positions": […], "balances": […], "openOrders": […]}."""
        ...

    def withdrawal_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        """{"epoch", "root", "trader", "token", "included", "cumulative", "proof": <docs/protocol.md §4 JSON form>}
        against `epoch`'s frozen root (None: the latest frozen epoch), or {"error", "detail"}."""
        ...

    def balance_proof(self, trader: bytes, token: bytes, epoch: int | None = None) -> dict:
        """{"epoch", "root", "trader", "token", "included", "amount", "deposited", "proof"}: the BALANCE leaf the
        escape hatch pays from, or its non-inclusion proof; {"error", "detail"} as for withdrawal_proof."""
        ...

    def state_root(self) -> bytes: ...
