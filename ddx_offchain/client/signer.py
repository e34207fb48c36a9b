"""The trader's signing side: build requests (docs/protocol.md §7.1) with fresh nonces and timestamps, sign them.

`Trader` holds a private key in memory; load it from an eth-account keystore with `Trader.from_keystore`. An agent
key approved by a trader (`approve_agent`) signs for that trader: `Trader(agent_key, domain, trader=address)`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from ..node.wallclock import wall_clock_ms
from ..protocol.eip712 import Domain, DomainCache, address_of
from ..protocol.names import id32_of
from ..protocol.requests import (
    Action,
    ActionKind,
    AgentScope,
    ApproveAgent,
    Batch,
    CancelAll,
    CancelOrder,
    CreateStrategy,
    ModifyOrder,
    OrderType,
    PlaceOrder,
    PlaceTrigger,
    PlaceTwap,
    RevokeAgent,
    ScheduleCancel,
    SignedRequest,
    Transfer,
    WithdrawIntent,
    sign_request,
    strategy_id,
)

MAIN = strategy_id("main")


ZERO32 = b"\x00" * 32


def _as_id(value: bytes | str) -> bytes:
    """A market or strategy: its bytes32 id (bytes or 0x-hex) or its readable name ("ETHP", "main")."""
    return id32_of(value)


def place_action(market: bytes | str, side: int, size: int, price: int = 0, *, order_type: int = OrderType.LIMIT,
                 reduce_only: bool = False, client_order_id: bytes | str | None = None, expiry_ms: int = 0) -> Action:
    """A batch's place action (the fields of a PlaceOrder)."""
    cid = ZERO32 if client_order_id is None else _as_id(client_order_id)
    return Action(ActionKind.PLACE, _as_id(market), side, order_type, price, size, reduce_only, ZERO32, cid, expiry_ms)


def cancel_action(market: bytes | str, order_hash: bytes) -> Action:
    return Action(ActionKind.CANCEL, _as_id(market), 0, 0, 0, 0, False, order_hash)


def modify_action(market: bytes | str, order_hash: bytes, price: int, size: int) -> Action:
    return Action(ActionKind.MODIFY, _as_id(market), 0, 0, price, size, False, order_hash)


class Trader:
    """Signs requests of `trader` (default: the key's own address). With another trader's address, the key is that
    trader's agent: it may sign trading requests only (docs/protocol.md §7.4), with its own nonces."""

    def __init__(
        self, private_key: bytes, domain: Domain, clock_ms: Callable[[], int] | None = None, *, trader: bytes | None = None
    ) -> None:
        self._key = private_key
        self.signer = address_of(private_key)
        self.address = trader if trader is not None else self.signer
        self.domain = domain
        self._domain = DomainCache(domain)
        self._clock_ms = clock_ms or wall_clock_ms
        self._last_nonce = 0
        self._lock = threading.Lock()

    @classmethod
    def from_keystore(cls, path: Path | str, password: str, domain: Domain) -> "Trader":
        from eth_account import Account

        return cls(bytes(Account.decrypt(json.loads(Path(path).read_text()), password)), domain)

    def next_nonce(self) -> int:
        """Unique per trader for the replay window: microseconds of the clock, strictly increasing."""
        with self._lock:
            self._last_nonce = max(self._last_nonce + 1, self._clock_ms() * 1000)
            return self._last_nonce

    def now_ms(self) -> int:
        """The clock this signer stamps its requests with (ms since the Unix epoch)."""
        return self._clock_ms()

    def _sign(self, request) -> SignedRequest:
        return sign_request(request, self._domain, self._key, self.signer)

    def _common(self, nonce: int | None) -> tuple[int, int]:
        return (self.next_nonce() if nonce is None else nonce), self._clock_ms()

    def place_order(
        self,
        market: bytes | str,
        side: int,
        size: int,
        price: int = 0,
        *,
        order_type: int = OrderType.LIMIT,
        reduce_only: bool = False,
        strategy: bytes | str = MAIN,
        client_order_id: bytes | str | None = None,
        expiry_ms: int = 0,
        nonce: int | None = None,
    ) -> SignedRequest:
        """`client_order_id`: your own id for the order (bytes32 or a name up to 32 bytes), unique among the
        strategy's open orders; `expiry_ms`: good till that sequenced time (limit and post-only orders)."""
        n, ts = self._common(nonce)
        cid = ZERO32 if client_order_id is None else _as_id(client_order_id)
        request = PlaceOrder(self.address, _as_id(strategy), _as_id(market), side, order_type, price, size, reduce_only,
                             n, ts, cid, expiry_ms)
        return self._sign(request)

    def cancel(self, market: bytes | str, order_hash: bytes, *, strategy: bytes | str = MAIN, nonce: int | None = None) -> SignedRequest:
        n, ts = self._common(nonce)
        return self._sign(CancelOrder(self.address, _as_id(strategy), _as_id(market), order_hash, n, ts))

    def cancel_all(self, market: bytes | str | None = None, *, strategy: bytes | str = MAIN, nonce: int | None = None) -> SignedRequest:
        n, ts = self._common(nonce)
        market_bytes = b"\x00" * 32 if market is None else _as_id(market)
        return self._sign(CancelAll(self.address, _as_id(strategy), market_bytes, n, ts))

    def modify(self, market: bytes | str, order_hash: bytes, price: int, size: int, *, strategy: bytes | str = MAIN, nonce: int | None = None) -> SignedRequest:
        n, ts = self._common(nonce)
        return self._sign(ModifyOrder(self.address, _as_id(strategy), _as_id(market), order_hash, price, size, n, ts))

    def withdraw_intent(self, token: bytes, amount: int, *, strategy: bytes | str = MAIN, nonce: int | None = None) -> SignedRequest:
        n, ts = self._common(nonce)
        return self._sign(WithdrawIntent(self.address, _as_id(strategy), token, amount, n, ts))

    def create_strategy(self, strategy: bytes | str, *, nonce: int | None = None) -> SignedRequest:
        n, ts = self._common(nonce)
        return self._sign(CreateStrategy(self.address, _as_id(strategy), n, ts))

    def place_trigger(
        self,
        market: bytes | str,
        side: int,
        direction: int,
        trigger_price: int,
        size: int,
        *,
        order_type: int = OrderType.MARKET,
        price: int = 0,
        reduce_only: bool = False,
        attached: bool = False,
        group: bytes | str | None = None,
        client_order_id: bytes | str | None = None,
        strategy: bytes | str = MAIN,
        nonce: int | None = None,
    ) -> SignedRequest:
        """A stop or take-profit (docs/engine.md §4.8): `direction` 0 fires when the mark rises to `trigger_price`, 1
        when it falls to it; `attached` makes it a stop-loss/take-profit of the position (reduce-only; `size` 0: all
        of it); triggers sharing a `group` cancel each other when one fires."""
        n, ts = self._common(nonce)
        request = PlaceTrigger(
            self.address, _as_id(strategy), _as_id(market), side, direction, trigger_price, order_type, price, size,
            reduce_only or attached, attached, ZERO32 if group is None else _as_id(group),
            ZERO32 if client_order_id is None else _as_id(client_order_id), n, ts,
        )
        return self._sign(request)

    def place_twap(self, market: bytes | str, side: int, size: int, duration_ms: int, interval_ms: int, *,
                   limit_price: int = 0, reduce_only: bool = False, strategy: bytes | str = MAIN,
                   nonce: int | None = None) -> SignedRequest:
        """A TWAP (docs/engine.md §4.9): `size` in IOC slices every `interval_ms` over `duration_ms` of sequenced
        time, each at `limit_price` (0: market)."""
        n, ts = self._common(nonce)
        return self._sign(PlaceTwap(self.address, _as_id(strategy), _as_id(market), side, size, duration_ms,
                                    interval_ms, limit_price, reduce_only, n, ts))

    def transfer(self, to_strategy: bytes | str, token: bytes, amount: int, *, strategy: bytes | str = MAIN,
                 nonce: int | None = None) -> SignedRequest:
        """Move free collateral between two of this trader's strategies."""
        n, ts = self._common(nonce)
        return self._sign(Transfer(self.address, _as_id(strategy), _as_id(to_strategy), token, amount, n, ts))

    def batch(self, actions, *, strategy: bytes | str = MAIN, atomic: bool = False,
              nonce: int | None = None) -> SignedRequest:
        """Up to 50 actions (place_action, cancel_action, modify_action) under one signature; action i's order id
        is protocol.requests.batch_action_id(request_hash, i). `atomic`: all or none (post-only quotes only)."""
        n, ts = self._common(nonce)
        return self._sign(Batch(self.address, _as_id(strategy), tuple(actions), n, ts, atomic))

    def approve_agent(self, agent: bytes, expiry_ms: int, *, strategy: bytes | str | None = None,
                      nonce: int | None = None) -> SignedRequest:
        """Let `agent` trade for this trader until `expiry_ms` (sequenced time), for `strategy` or (None) all."""
        n, ts = self._common(nonce)
        scope_strategy = ZERO32 if strategy is None else _as_id(strategy)
        return self._sign(ApproveAgent(self.address, scope_strategy, agent, AgentScope.TRADE, expiry_ms, n, ts))

    def schedule_cancel(self, time_ms: int, *, market: bytes | str | None = None, strategy: bytes | str | None = MAIN,
                        nonce: int | None = None) -> SignedRequest:
        """The dead man's switch: at sequenced `time_ms` cancel the open orders of `strategy` (None: all) in `market`
        (None: all) unless renewed (sent again with a later time) or cleared (`time_ms` 0)."""
        n, ts = self._common(nonce)
        scope_strategy = ZERO32 if strategy is None else _as_id(strategy)
        scope_market = ZERO32 if market is None else _as_id(market)
        return self._sign(ScheduleCancel(self.address, scope_strategy, scope_market, time_ms, n, ts))

    def revoke_agent(self, agent: bytes, *, strategy: bytes | str | None = None, nonce: int | None = None) -> SignedRequest:
        n, ts = self._common(nonce)
        scope_strategy = ZERO32 if strategy is None else _as_id(strategy)
        return self._sign(RevokeAgent(self.address, scope_strategy, agent, n, ts))
