"""Human units: decimal prices and sizes to the engine's integers and back, with a market's specs (docs/engine.md).

A **size** is an integer in 10^-size_decimals contracts, a multiple of the market's `lot`; a **price** is collateral
base units (10^-token_decimals of a token) per whole contract, a multiple of its `tick`. So with ETHP (tick 10_000,
lot 1_000, size_decimals 6) in a 6-decimal stablecoin, "2000.01" is the price 2_000_010_000 and "0.5" the size
500_000.

Values are `Decimal` or `str`, never `float` (a float is not the decimal it prints) nor `int` (it would be
ambiguous with engine units): anything else is refused with a UnitError. Conversion is exact. A value that is not
a multiple of the tick (price) or the lot (size) is refused unless `round=True`, and then rounded toward the safe
side: a buy's price down, a sell's price up (never pay more, never sell for less, than the caller said), and a
size down (never more exposure than asked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ..errors import DdxError
from ..protocol.eip712 import parse_address
from ..protocol.errors import ProtocolError
from ..protocol.names import id32_of, readable_name

BUY, SELL = 0, 1
_INTEGER = re.compile(r"^-?[0-9]{1,80}$")


class UnitError(DdxError, ValueError):
    """A human value that cannot become an engine integer (not a decimal, a float, off the grid, ≤ 0)."""

    reason = "bad_units"


def _exact(value: Decimal | str, what: str) -> Fraction:
    if isinstance(value, float):
        raise UnitError(f"{what} {value!r} is a float: pass a Decimal or a str (a float is not the decimal it prints)")
    if isinstance(value, (bool, int)):
        raise UnitError(f"{what} {value!r} is an int: pass a Decimal or a str (engine integers go to Trader directly)")
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise UnitError(f"{what} {value!r} is not a decimal number") from None
    if not isinstance(value, Decimal):
        raise UnitError(f"{what} must be a Decimal or a str, got {type(value).__name__}")
    if not value.is_finite():
        raise UnitError(f"{what} {value} is not a finite number")
    return Fraction(value)


def _units(value: int | str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UnitError(f"{what} in engine units is an int or a decimal string")
    if isinstance(value, str):
        if not _INTEGER.match(value):
            raise UnitError(f"{what} {value!r} is not an integer")
        value = int(value)
    return value


def _decimal(units: int, decimals: int) -> Decimal:
    """units × 10^-decimals, exactly (a string keeps every digit, whatever the decimal context's precision)."""
    return Decimal(f"{units}E-{decimals}")


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """What converting needs of a market: its grid (tick, lot), its size decimals, and its collateral's decimals."""

    market: bytes
    token: bytes
    tick: int
    lot: int
    size_decimals: int
    token_decimals: int

    @property
    def symbol(self) -> str | None:
        return readable_name(self.market)

    @classmethod
    def from_doc(cls, doc: dict, token_decimals: int | None = None) -> "MarketSpec":
        """From `GET /v1/markets/{market}`; `token_decimals` when the node does not serve `tokenDecimals`."""
        served = doc.get("tokenDecimals")
        decimals = int(served) if served is not None else token_decimals
        if decimals is None:
            raise UnitError(
                "the collateral token's decimals are unknown: this node does not serve tokenDecimals; "
                "pass token_decimals to DdxClient (or build it with DdxClient.from_manifest)"
            )
        try:
            return cls(id32_of(doc["market"]), parse_address(doc["token"]), int(doc["tick"]), int(doc["lot"]),
                       int(doc["sizeDecimals"]), decimals)
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            raise UnitError(f"not a market document: {exc}") from None

    # ------------------------------------------------------------ human -> engine

    def price_units(self, price: Decimal | str, *, side: int | None = None, round: bool = False) -> int:
        """The engine price of a decimal one (collateral per whole contract). `round` needs `side`: buys round
        down to the tick, sells up."""
        exact = _exact(price, "price")
        if exact <= 0:
            raise UnitError(f"price {price} must be positive")
        steps = exact * 10**self.token_decimals / self.tick
        if steps.denominator != 1:
            if not round:
                raise UnitError(
                    f"price {price} is not a multiple of the tick {self.price(self.tick)}: "
                    "pass round=True (with the side) to round it, buys down and sells up"
                )
            if side not in (BUY, SELL):
                raise UnitError("rounding a price needs the order's side (0 buy: down, 1 sell: up)")
            steps = Fraction(steps.numerator // steps.denominator + (side == SELL))
            if steps == 0:
                raise UnitError(f"price {price} rounds down to zero")
        return int(steps) * self.tick

    def size_units(self, size: Decimal | str, *, round: bool = False) -> int:
        """The engine size of a decimal one (contracts). `round` rounds down to the lot."""
        exact = _exact(size, "size")
        if exact <= 0:
            raise UnitError(f"size {size} must be positive")
        steps = exact * 10**self.size_decimals / self.lot
        if steps.denominator != 1:
            if not round:
                raise UnitError(f"size {size} is not a multiple of the lot {self.size(self.lot)}: pass round=True to round it down")
            steps = Fraction(steps.numerator // steps.denominator)
            if steps == 0:
                raise UnitError(f"size {size} rounds down to zero lots (the lot is {self.size(self.lot)})")
        return int(steps) * self.lot

    # ------------------------------------------------------------ engine -> human

    def price(self, units: int | str) -> Decimal:
        """A price the API rendered (an int or its decimal string) in collateral per whole contract."""
        return _decimal(_units(units, "price"), self.token_decimals)

    def size(self, units: int | str) -> Decimal:
        """A size (or position) the API rendered, in contracts."""
        return _decimal(_units(units, "size"), self.size_decimals)

    def amount(self, units: int | str) -> Decimal:
        """A collateral amount (balance, PnL, margin, fee) in tokens."""
        return _decimal(_units(units, "amount"), self.token_decimals)

    def levels(self, levels: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
        """A book side of `GET /v1/books/{market}` as (price, size) decimals."""
        return [(self.price(p), self.size(z)) for p, z in levels]
