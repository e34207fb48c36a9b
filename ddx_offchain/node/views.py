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

    def withdrawal_proof(self, trader: bytes, token: bytes) -> dict:
        """{"root", "epoch", "cumulative", "proof": <docs/protocol.md §4 JSON form>} for the latest frozen epoch."""
        ...

    def state_root(self) -> bytes: ...
