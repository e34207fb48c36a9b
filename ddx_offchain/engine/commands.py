"""Engine-level commands and their deterministic binary encoding (docs/engine.md, "Commands").

Trader commands arrive with `trader` already signature-checked by the node (docs/protocol.md §7); every other
field is re-validated by the engine. `request_id` is the request hash (§7.1): it names the request in every update
and is the id of the order a PlaceOrder or ModifyOrder creates. Operator commands are sequenced like any request.

Encoding: one tag byte, then every field as a 32-byte ABI word in declaration order; a list is a count word
followed by its elements' words. No pickle, no self-describing format: the same command always has the same bytes.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from ..protocol import requests as pr
from ..protocol.hashing import keccak256
from .codec import ZERO12
from .errors import CommandDecodeError

MAX_LIST = 4096  # deposits per block, prices per update
BUY, SELL = 0, 1
LIMIT, LIMIT_IOC, POST_ONLY, MARKET, FILL_OR_KILL = 0, 1, 2, 3, 4  # docs/protocol.md §7.1 orderType
ZERO_ID = b"\x00" * 32
ZERO_ADDRESS = b"\x00" * 20


def name32(name: str) -> bytes:
    """Readable bytes32 id: UTF-8 right-padded with zeros ("main" strategy, "ETHP" market)."""
    raw = name.encode()
    if not 0 < len(raw) <= 32:
        raise ValueError("a readable id is 1..32 bytes")
    return raw.ljust(32, b"\x00")


MAIN_STRATEGY = name32("main")


class _Command(msgspec.Struct, frozen=True, gc=False):
    TAG: ClassVar[int] = 0
    SPEC: ClassVar[tuple[str, ...]] = ()


# ----------------------------------------------------------------------------- trader commands

_PYTHON_TYPE = {"address": bytes, "bytes32": bytes, "bool": bool, "Action[]": tuple}  # every uintN is an int
_ENGINE_ABI = {"Action[]": "list:BatchAction"}  # a request's list of structs: the engine's struct of the same words


class BatchAction(msgspec.Struct, frozen=True, gc=False):
    """A Batch's action (protocol.requests.Action, same fields and words): kind 0 place, 1 cancel, 2 modify."""

    SPEC: ClassVar[tuple[str, ...]] = (
        "uint8", "bytes32", "uint8", "uint8", "uint256", "uint256", "bool", "bytes32", "bytes32", "uint64",
    )
    kind: int
    market: bytes
    side: int
    order_type: int
    price: int
    size: int
    reduce_only: bool
    order_hash: bytes
    client_order_id: bytes = b"\x00" * 32
    expiry: int = 0
_NOT_FOR_THE_ENGINE = ("nonce", "timestamp")  # the state machine's replay rules use them (docs/protocol.md §7.4)


def trader_command(request: type, tag: int, doc: str, **defaults: object) -> type[_Command]:
    """The engine command of a trader request type, following the request's one declaration (protocol.requests):
    `request_id` (the request hash), then the request's fields but nonce and timestamp, in order, same ABI types."""
    declared = [(attr, abi) for attr, _, abi in request.FIELDS if attr not in _NOT_FOR_THE_ENGINE]
    fields: list = [("request_id", bytes)]
    for attr, abi in declared:
        kind = _PYTHON_TYPE.get(abi, int)
        fields.append((attr, kind, defaults[attr]) if attr in defaults else (attr, kind))
    spec = ("bytes32", *(_ENGINE_ABI.get(abi, abi) for _, abi in declared))
    namespace = {"TAG": tag, "SPEC": spec, "REQUEST": request, "__doc__": doc}
    return msgspec.defstruct(
        request.PRIMARY_TYPE, fields, bases=(_Command,), module=__name__, namespace=namespace, frozen=True, gc=False
    )


PlaceOrder = trader_command(
    pr.PlaceOrder, 1, "A new order; its id is the request id.", reduce_only=False, client_order_id=ZERO_ID, expiry=0,
)
CancelOrder = trader_command(pr.CancelOrder, 2, "Cancel the strategy's order `order_hash` (an order id).")
CancelAll = trader_command(
    pr.CancelAll, 3, "Cancel every open order of the strategy in `market`, or in every market when `market` is zero.",
    market=ZERO_ID,
)
ModifyOrder = trader_command(
    pr.ModifyOrder, 4,
    "Atomic cancel-replace of `order_hash`: same side and type, new price and size, new id (request_id), back of the queue.",
)
WithdrawIntent = trader_command(pr.WithdrawIntent, 5, "Move `amount` of free collateral to the WITHDRAWAL leaf.")
CreateStrategy = trader_command(pr.CreateStrategy, 6, "Open a new strategy (sub-account) for the trader.")
Batch = trader_command(
    pr.Batch, 7, "Place/cancel/modify actions applied in order, each accepted or rejected on its own (atomic: all or "
    "none, nothing trades); action i's request id (and order id) is protocol.requests.batch_action_id(request_id, i).",
    atomic=False,
)
ApproveAgent = trader_command(
    pr.ApproveAgent, 8, "Let `agent` sign the trader's trading requests for `strategy` (zero: all) until `expiry`.",
)
RevokeAgent = trader_command(pr.RevokeAgent, 9, "End `agent`'s approval for the trader's `strategy`.")
Transfer = trader_command(
    pr.Transfer, 11, "Move `amount` of `token` from `strategy` to the trader's existing `to_strategy` (free collateral).",
)
PlaceTrigger = trader_command(
    pr.PlaceTrigger, 12, "A conditional order, placed (id: request_id) when the mark reaches trigger_price.",
)
PlaceTwap = trader_command(
    pr.PlaceTwap, 13, "A TWAP order: `size` in IOC slices every `interval` ms over `duration` ms of sequenced time.",
)
ScheduleCancel = trader_command(
    pr.ScheduleCancel, 10, "At sequenced `time`, cancel the trader's open orders of `strategy` in `market` (zeros: "
    "all); `time` 0 clears the schedule.",
)


# ----------------------------------------------------------------------------- operator commands


class Deposit(msgspec.Struct, frozen=True, gc=False):
    SPEC: ClassVar[tuple[str, ...]] = ("uint64", "address", "bytes32", "address", "uint256")
    seq: int
    trader: bytes
    strategy: bytes
    token: bytes
    amount: int


class Word(msgspec.Struct, frozen=True, gc=False):
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32",)
    value: bytes


class ForcedRequest(msgspec.Struct, frozen=True, gc=False):
    """A trader's request put in the L1 inbox (contracts/modules/forced.vy): applied after `deposits_before`
    deposits, as the same request signed by `trader` would be (docs/protocol.md §6.5)."""

    SPEC: ClassVar[tuple[str, ...]] = ("uint64", "uint64", "address", "uint8", "list:Word")
    seq: int
    deposits_before: int
    trader: bytes
    request_type: int
    fields: tuple[Word, ...]

    @classmethod
    def of(cls, seq: int, deposits_before: int, trader: bytes, request_type: int, fields: bytes) -> "ForcedRequest":
        """From the fields as the contract logs them (the words concatenated)."""
        words = tuple(Word(fields[i : i + 32]) for i in range(0, len(fields), 32))
        return cls(seq, deposits_before, trader, request_type, words)

    def field_bytes(self) -> bytes:
        return b"".join(w.value for w in self.fields)

    def request_id(self) -> bytes:
        """Its request id (and order id): the forced seq names it, once per deployment."""
        return forced_request_id(self.seq)


def forced_request_id(seq: int) -> bytes:
    return keccak256(b"ddx forced request" + seq.to_bytes(32, "big"))


class ChainBlock(_Command, frozen=True, gc=False):
    """A confirmed chain block: its number, hash, deposit events (seq strictly consecutive from 1) and forced
    requests (seq strictly consecutive from 1), each kind in log order."""

    TAG: ClassVar[int] = 16
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "uint64", "bytes32", "list:Deposit", "list:ForcedRequest")
    request_id: bytes
    block_number: int
    block_hash: bytes
    deposits: tuple[Deposit, ...] = ()
    forced: tuple[ForcedRequest, ...] = ()


class IndexPrice(msgspec.Struct, frozen=True, gc=False):
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "uint256")
    market: bytes
    price: int


class IndexPrices(_Command, frozen=True, gc=False):
    TAG: ClassVar[int] = 17
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "list:IndexPrice")
    request_id: bytes
    prices: tuple[IndexPrice, ...]


class AdvanceTime(_Command, frozen=True, gc=False):
    """Sequenced time (ms since the Unix epoch); funding is paid for every interval boundary it crosses."""

    TAG: ClassVar[int] = 18
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "uint64")
    request_id: bytes
    time_ms: int


class AdvanceEpoch(_Command, frozen=True, gc=False):
    TAG: ClassVar[int] = 19
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "uint64")
    request_id: bytes
    epoch: int


class MarketParams(msgspec.Struct, frozen=True, gc=False):
    """Everything that defines a market (docs/engine.md, "Markets"). bps = 1/10,000."""

    SPEC: ClassVar[tuple[str, ...]] = (
        "bytes32", "address", "uint256", "uint256", "uint8", "uint16", "uint16", "uint16", "uint16", "uint16",
        "uint16", "uint16", "uint16", "uint16", "uint64", "uint256", "bool",
    )
    market: bytes
    token: bytes
    tick: int  # price granularity, token base units per whole contract
    lot: int  # size granularity, in 10**-size_decimals contracts
    size_decimals: int
    initial_margin_bps: int
    maintenance_margin_bps: int
    maker_fee_bps: int
    taker_fee_bps: int
    liquidation_fee_bps: int
    market_order_band_bps: int  # how far from the mark a market order may take
    premium_cap_bps: int  # |mark - index| <= index * cap
    funding_cap_bps: int  # |funding per interval| <= index * cap
    funding_dampener: int  # funding per interval = premium / dampener (then capped)
    funding_interval_ms: int
    max_order_notional: int
    active: bool = True


class ListMarket(_Command, frozen=True, gc=False):
    TAG: ClassVar[int] = 20
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "struct:MarketParams")
    request_id: bytes
    params: MarketParams


class UpdateMarket(_Command, frozen=True, gc=False):
    """New parameters for a listed market; token, tick, lot and size_decimals never change."""

    TAG: ClassVar[int] = 21
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "struct:MarketParams")
    request_id: bytes
    params: MarketParams


class ListToken(_Command, frozen=True, gc=False):
    TAG: ClassVar[int] = 22
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "address")
    request_id: bytes
    token: bytes


class FundInsurance(_Command, frozen=True, gc=False):
    """Move collected fees of a token into its insurance fund (the only way the fund is capitalized besides
    liquidation fees and funding rounding; deposits always belong to traders)."""

    TAG: ClassVar[int] = 23
    SPEC: ClassVar[tuple[str, ...]] = ("bytes32", "address", "uint256")
    request_id: bytes
    token: bytes
    amount: int


TRADER_COMMANDS = (
    PlaceOrder, CancelOrder, CancelAll, ModifyOrder, WithdrawIntent, CreateStrategy, Batch, ApproveAgent, RevokeAgent,
    ScheduleCancel, Transfer, PlaceTrigger, PlaceTwap,
)
COMMAND_OF_REQUEST: dict[type, type[_Command]] = {cls.REQUEST: cls for cls in TRADER_COMMANDS}


def from_request(request: pr.TraderRequest, request_hash: bytes) -> _Command:
    """The engine command for a verified trader request; `request_hash` becomes its request_id (and order id)."""
    cls = COMMAND_OF_REQUEST.get(type(request))
    if cls is None:
        raise TypeError(f"not a trader request: {type(request).__name__}")
    values = []
    for attr in cls.__struct_fields__[1:]:
        value = getattr(request, attr)
        if attr == "actions":
            value = tuple(BatchAction(*(getattr(a, f) for f in BatchAction.__struct_fields__)) for a in value)
        values.append(value)
    return cls(request_hash, *values)


def action_command(batch, index: int, action: BatchAction):
    """The single command a batch's action stands for, under its own request id; None for an unknown kind."""
    rid = pr.batch_action_id(batch.request_id, index)
    kind = action.kind
    if kind == pr.ActionKind.PLACE:
        return PlaceOrder(rid, batch.trader, batch.strategy, action.market, action.side, action.order_type,
                          action.price, action.size, action.reduce_only, action.client_order_id, action.expiry)
    if kind == pr.ActionKind.CANCEL:
        return CancelOrder(rid, batch.trader, batch.strategy, action.market, action.order_hash)
    if kind == pr.ActionKind.MODIFY:
        return ModifyOrder(rid, batch.trader, batch.strategy, action.market, action.order_hash, action.price,
                           action.size)
    return None
OPERATOR_COMMANDS = (
    ChainBlock, IndexPrices, AdvanceTime, AdvanceEpoch, ListMarket, UpdateMarket, ListToken, FundInsurance,
)
Command = (
    PlaceOrder | CancelOrder | CancelAll | ModifyOrder | WithdrawIntent | CreateStrategy | Batch | ApproveAgent
    | RevokeAgent | ScheduleCancel | Transfer | PlaceTrigger | PlaceTwap | ChainBlock | IndexPrices | AdvanceTime | AdvanceEpoch | ListMarket | UpdateMarket | ListToken | FundInsurance
)
_BY_TAG = {cls.TAG: cls for cls in TRADER_COMMANDS + OPERATOR_COMMANDS}
_NESTED = {
    "Deposit": Deposit, "IndexPrice": IndexPrice, "MarketParams": MarketParams, "ForcedRequest": ForcedRequest,
    "Word": Word, "BatchAction": BatchAction,
}
_UINT_BITS = {"uint8": 8, "uint16": 16, "uint64": 64, "uint256": 256}


# ----------------------------------------------------------------------------- encoding


def _encode_struct(obj, out: list[bytes]) -> None:
    for abi, name in zip(obj.SPEC, obj.__struct_fields__):
        value = getattr(obj, name)
        if abi == "bytes32":
            if not isinstance(value, bytes) or len(value) != 32:
                raise CommandDecodeError(f"{name} must be 32 bytes")
            out.append(value)
        elif abi == "address":
            if not isinstance(value, bytes) or len(value) != 20:
                raise CommandDecodeError(f"{name} must be a 20-byte address")
            out.append(ZERO12 + value)
        elif abi == "bool":
            out.append((1 if value else 0).to_bytes(32, "big"))
        elif abi in _UINT_BITS:
            if not isinstance(value, int) or not 0 <= value < (1 << _UINT_BITS[abi]):
                raise CommandDecodeError(f"{name} does not fit {abi}")
            out.append(value.to_bytes(32, "big"))
        elif abi.startswith("list:"):
            out.append(len(value).to_bytes(32, "big"))
            for item in value:
                _encode_struct(item, out)
        else:  # struct:
            _encode_struct(value, out)


def encode_command(command: Command) -> bytes:
    """tag byte ‖ 32-byte words (docs/engine.md, "Command encoding")."""
    out: list[bytes] = [bytes((command.TAG,))]
    _encode_struct(command, out)
    return b"".join(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def word(self) -> bytes:
        end = self.pos + 32
        if end > len(self.data):
            raise CommandDecodeError("command truncated")
        w = self.data[self.pos : end]
        self.pos = end
        return w


def _decode_struct(cls, reader: _Reader):
    values = []
    for abi, name in zip(cls.SPEC, cls.__struct_fields__):
        if abi.startswith("list:"):
            count = int.from_bytes(reader.word(), "big")
            if count > MAX_LIST:
                raise CommandDecodeError(f"{name}: {count} elements, at most {MAX_LIST}")
            item_cls = _NESTED[abi[5:]]
            values.append(tuple(_decode_struct(item_cls, reader) for _ in range(count)))
            continue
        if abi.startswith("struct:"):
            values.append(_decode_struct(_NESTED[abi[7:]], reader))
            continue
        w = reader.word()
        if abi == "bytes32":
            values.append(w)
        elif abi == "address":
            if w[:12] != ZERO12:
                raise CommandDecodeError(f"{name}: address word with non-zero padding")
            values.append(w[12:])
        elif abi == "bool":
            if w[:31] != b"\x00" * 31 or w[31] > 1:
                raise CommandDecodeError(f"{name}: bool word other than 0 or 1")
            values.append(w[31] == 1)
        else:
            v = int.from_bytes(w, "big")
            if v >> _UINT_BITS[abi]:
                raise CommandDecodeError(f"{name}: does not fit {abi}")
            values.append(v)
    return cls(*values)


def decode_command(data: bytes) -> Command:
    """The inverse of encode_command; raises CommandDecodeError on any deviation (unknown tag, bad padding,
    out-of-range integer, trailing bytes)."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise CommandDecodeError("empty command")
    cls = _BY_TAG.get(data[0])
    if cls is None:
        raise CommandDecodeError(f"unknown command tag {data[0]}")
    reader = _Reader(bytes(data), 1)
    command = _decode_struct(cls, reader)
    if reader.pos != len(data):
        raise CommandDecodeError("trailing bytes after the command")
    return command
