"""Trader requests and operator receipts: EIP-712 types, wire (JSON) forms and log entries (docs/protocol.md §7).

A trader signs one of the request structs below under the DDX domain (§5). The node keeps the signed bytes in the
Raft log (`encode_entry`) so every follower re-verifies the signature when it applies the entry. After the entry is
committed on a quorum and applied, an operator signs a `Receipt` over (request hash, request index, epoch, sender,
nonce) under the same domain.

Every field is a static ABI type, so encodeData is one 32-byte word per field. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dc_fields
from enum import IntEnum
from typing import Annotated, ClassVar, get_type_hints

from .eip712 import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    Domain,
    DomainCache,
    SignatureError,
    Signer,
    address_of,
    checksum_address,
    encode_word,
    from_json,
    parse_signature,
    recover_signer,
    sign_digest,
    to_json,
)
from .errors import ProtocolError
from .hashing import keccak256

# Largest price, size or amount a request may carry: keeps every product the engine forms (price × size, fees)
# far inside uint256, the width of every leaf field.
MAX_QUANTITY = 2**128 - 1
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = b"\x00" * 20

# Replay protection (§7.4). A request's timestamp (ms since the Unix epoch, chosen by the client) bounds how long
# its (trader, nonce) pair must be remembered: the state machine refuses a request older than the highest
# timestamp it has applied minus REPLAY_WINDOW_MS, and refuses a repeated (trader, nonce) inside the window.
REPLAY_WINDOW_MS = 300_000

ENTRY_TRADER_REQUEST = 0x01  # log entry tag: a trader-signed request (this module)
ENTRY_OPERATOR_COMMAND = 0x02  # log entry tag: an operator command (encoded by the engine's command codec)


# A request field's declaration is its annotation: the Python type with its ABI type beside it. The EIP-712 field
# list (names in camelCase, types, order), the type string and typehash, and the engine command's fields all follow
# from it (`_spec` here, `engine.commands.trader_command`).
Address = Annotated[bytes, "address"]
Bytes32 = Annotated[bytes, "bytes32"]
Uint8 = Annotated[int, "uint8"]
Uint64 = Annotated[int, "uint64"]
Uint256 = Annotated[int, "uint256"]
Bool = Annotated[bool, "bool"]
# the one dynamic field type: Batch's list of actions (an EIP-712 array of the `Action` struct below)
Actions = Annotated[tuple, "Action[]"]
MAX_BATCH_ACTIONS = 50


def eip712_name(attr: str) -> str:
    """order_type -> orderType: the EIP-712 name of a field."""
    head, *rest = attr.split("_")
    return head + "".join(part.title() for part in rest)


class Side(IntEnum):
    BUY = 0
    SELL = 1


class OrderType(IntEnum):
    LIMIT = 0  # good till cancelled
    LIMIT_IOC = 1  # immediate or cancel: the unfilled rest is cancelled
    POST_ONLY = 2  # refused if it would take liquidity
    MARKET = 3  # price must be 0: takes until filled or the book is empty
    FILL_OR_KILL = 4  # limit price; filled in full at once or rejected, changing nothing


class RequestRejected(ProtocolError):
    """A well-formed JSON request that breaks a stateless rule; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Request:
    """Common shape: every request names its trader and carries a nonce and a client timestamp (ms)."""

    TYPE_ID: ClassVar[int]
    PRIMARY_TYPE: ClassVar[str]
    # (python attribute, EIP-712 field name, ABI type), in type-string order
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]]
    TYPE_STRING: ClassVar[str]
    TYPEHASH: ClassVar[bytes]

    # the struct types the request's fields refer to (EIP-712 `encodeType`: appended to the type string, sorted)
    REFERENCED: ClassVar[tuple[type, ...]] = ()

    def encode_data(self) -> bytes:
        return b"".join(_encode_field(abi, getattr(self, attr)) for attr, _, abi in self.FIELDS)

    def struct_hash(self) -> bytes:
        return keccak256(self.TYPEHASH + self.encode_data())

    def digest(self, domain: Domain | DomainCache) -> bytes:
        """The EIP-712 signing hash; also the request's identity (its *request hash*)."""
        return domain.digest(self.struct_hash())

    def message_json(self) -> dict:
        return {name: _field_json(abi, getattr(self, attr)) for attr, name, abi in self.FIELDS}

    def typed_data(self, domain: Domain) -> dict:
        """The full `eth_signTypedData_v4` document a wallet signs (ethers: domain, types, message)."""
        types = {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            self.PRIMARY_TYPE: [{"name": name, "type": abi} for _, name, abi in self.FIELDS],
        }
        for struct in self.REFERENCED:
            types[struct.PRIMARY_TYPE] = [{"name": name, "type": abi} for _, name, abi in struct.FIELDS]
        return {
            "types": types,
            "primaryType": self.PRIMARY_TYPE,
            "domain": domain.to_typed_data(),
            "message": self.message_json(),
        }

    def validate(self) -> None:
        """Stateless rules every node can check without state; raises RequestRejected."""
        if self.trader == ZERO_ADDRESS:
            raise RequestRejected("bad_field", "trader is the zero address")


def _spec(cls):
    """Derive FIELDS, TYPE_STRING and TYPEHASH from the annotated fields, the request type's one declaration."""
    hints = get_type_hints(cls, include_extras=True)
    cls.FIELDS = tuple((f.name, eip712_name(f.name), hints[f.name].__metadata__[0]) for f in dc_fields(cls))
    own = f"{cls.PRIMARY_TYPE}(" + ",".join(f"{abi} {name}" for _, name, abi in cls.FIELDS) + ")"
    cls.TYPE_STRING = own + "".join(s.TYPE_STRING for s in sorted(cls.REFERENCED, key=lambda s: s.PRIMARY_TYPE))
    cls.TYPEHASH = keccak256(cls.TYPE_STRING.encode())
    return cls


def _encode_field(abi: str, value) -> bytes:
    """A field's word in encodeData: the ABI word of a static field; for an array of structs, the hash of its
    elements' struct hashes concatenated (EIP-712)."""
    if abi == "Action[]":
        return keccak256(b"".join(action.struct_hash() for action in value))
    return encode_word(abi, value)


def _field_json(abi: str, value):
    if abi == "Action[]":
        return [action.message_json() for action in value]
    return to_json(abi, value)


def _check_quantity(name: str, value: int, *, positive: bool) -> None:
    if value > MAX_QUANTITY:
        raise RequestRejected("bad_field", f"{name} exceeds 2^128 - 1")
    if positive and value == 0:
        raise RequestRejected("bad_field", f"{name} must be positive")


def _check_order_price(order_type: int, price: int) -> None:
    """A market order carries price 0, every other order a positive price."""
    if order_type == OrderType.MARKET:
        if price != 0:
            raise RequestRejected("bad_field", "a market order carries price 0")
    else:
        _check_quantity("price", price, positive=True)


@_spec
@dataclass(frozen=True, slots=True)
class PlaceOrder(_Request):
    trader: Address
    strategy: Bytes32
    market: Bytes32
    side: Uint8
    order_type: Uint8
    price: Uint256
    size: Uint256
    reduce_only: Bool
    nonce: Uint64
    timestamp: Uint64
    client_order_id: Bytes32 = ZERO32  # chosen by the trader, unique among the strategy's open orders; zero: none
    expiry: Uint64 = 0  # good till this sequenced time (ms) for an order that rests; zero: good till cancelled

    TYPE_ID: ClassVar[int] = 1
    PRIMARY_TYPE: ClassVar[str] = "PlaceOrder"

    def validate(self) -> None:
        _Request.validate(self)
        if self.market == ZERO32:
            raise RequestRejected("bad_field", "market is zero")
        if self.side not in (Side.BUY, Side.SELL):
            raise RequestRejected("bad_field", "side must be 0 (buy) or 1 (sell)")
        if self.order_type not in _ORDER_TYPES:
            raise RequestRejected("bad_field", "orderType must be 0..4")
        _check_order_price(self.order_type, self.price)
        _check_quantity("size", self.size, positive=True)
        if self.expiry and self.order_type not in (OrderType.LIMIT, OrderType.POST_ONLY):
            raise RequestRejected("bad_field", "only an order that rests (limit, post-only) carries an expiry")


@_spec
@dataclass(frozen=True, slots=True)
class CancelOrder(_Request):
    trader: Address
    strategy: Bytes32
    market: Bytes32
    order_hash: Bytes32
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 2
    PRIMARY_TYPE: ClassVar[str] = "CancelOrder"

    def validate(self) -> None:
        _Request.validate(self)
        if self.market == ZERO32 or self.order_hash == ZERO32:
            raise RequestRejected("bad_field", "market and orderHash must be non-zero")


@_spec
@dataclass(frozen=True, slots=True)
class CancelAll(_Request):
    trader: Address
    strategy: Bytes32
    market: Bytes32  # zero: every market of the strategy
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 3
    PRIMARY_TYPE: ClassVar[str] = "CancelAll"


@_spec
@dataclass(frozen=True, slots=True)
class ModifyOrder(_Request):
    trader: Address
    strategy: Bytes32
    market: Bytes32
    order_hash: Bytes32
    price: Uint256
    size: Uint256
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 4
    PRIMARY_TYPE: ClassVar[str] = "ModifyOrder"

    def validate(self) -> None:
        _Request.validate(self)
        if self.market == ZERO32 or self.order_hash == ZERO32:
            raise RequestRejected("bad_field", "market and orderHash must be non-zero")
        _check_quantity("price", self.price, positive=True)
        _check_quantity("size", self.size, positive=True)


@_spec
@dataclass(frozen=True, slots=True)
class WithdrawIntent(_Request):
    trader: Address
    strategy: Bytes32
    token: Address
    amount: Uint256
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 5
    PRIMARY_TYPE: ClassVar[str] = "WithdrawIntent"

    def validate(self) -> None:
        _Request.validate(self)
        if self.token == ZERO_ADDRESS:
            raise RequestRejected("bad_field", "token is the zero address")
        _check_quantity("amount", self.amount, positive=True)


@_spec
@dataclass(frozen=True, slots=True)
class CreateStrategy(_Request):
    trader: Address
    strategy: Bytes32
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 6
    PRIMARY_TYPE: ClassVar[str] = "CreateStrategy"


class ActionKind(IntEnum):
    PLACE = 0
    CANCEL = 1
    MODIFY = 2


_ACTION_KINDS = frozenset(ActionKind)
_ORDER_TYPES = frozenset(OrderType)
_BOOL_WORDS = {False: b"\x00" * 32, True: (1).to_bytes(32, "big")}


@_spec
@dataclass(frozen=True, slots=True)
class Action:
    """One action of a Batch: a PlaceOrder, CancelOrder or ModifyOrder of the batch's trader and strategy, in one
    struct. Fields a kind does not use must be zero (one canonical form per action)."""

    kind: Uint8
    market: Bytes32
    side: Uint8
    order_type: Uint8
    price: Uint256
    size: Uint256
    reduce_only: Bool
    order_hash: Bytes32
    client_order_id: Bytes32 = ZERO32
    expiry: Uint64 = 0

    PRIMARY_TYPE: ClassVar[str] = "Action"
    REFERENCED: ClassVar[tuple[type, ...]] = ()

    def struct_hash(self) -> bytes:
        return keccak256(self.TYPEHASH + self.words())

    def message_json(self) -> dict:
        return {name: to_json(abi, getattr(self, attr)) for attr, name, abi in self.FIELDS}

    def words(self) -> bytes:
        """Its ten ABI words (what the struct hash and the log entry carry), written out: this runs per action."""
        return b"".join((
            self.kind.to_bytes(32, "big"), self.market, self.side.to_bytes(32, "big"),
            self.order_type.to_bytes(32, "big"), self.price.to_bytes(32, "big"), self.size.to_bytes(32, "big"),
            _BOOL_WORDS[bool(self.reduce_only)], self.order_hash, self.client_order_id,
            self.expiry.to_bytes(32, "big"),
        ))

    def single(self, trader: bytes, strategy: bytes) -> "PlaceOrder | CancelOrder | ModifyOrder":
        """The single request this action stands for (nonce and timestamp 0: the batch carries them)."""
        if self.kind == ActionKind.PLACE:
            return PlaceOrder(trader, strategy, self.market, self.side, self.order_type, self.price, self.size,
                              self.reduce_only, 0, 0, self.client_order_id, self.expiry)
        if self.kind == ActionKind.CANCEL:
            return CancelOrder(trader, strategy, self.market, self.order_hash, 0, 0)
        return ModifyOrder(trader, strategy, self.market, self.order_hash, self.price, self.size, 0, 0)

    def validate(self, trader: bytes, strategy: bytes) -> None:
        if self.kind not in _ACTION_KINDS:
            raise RequestRejected("bad_field", "action kind must be 0 (place), 1 (cancel) or 2 (modify)")
        unused = {
            ActionKind.PLACE: ("order_hash",),
            ActionKind.CANCEL: ("side", "order_type", "price", "size", "reduce_only", "client_order_id", "expiry"),
            ActionKind.MODIFY: ("side", "order_type", "reduce_only", "client_order_id", "expiry"),
        }[self.kind]
        for attr in unused:
            value = getattr(self, attr)
            if (value != ZERO32) if isinstance(value, bytes) else value:
                raise RequestRejected("bad_field", f"a {ActionKind(self.kind).name.lower()} action must have {attr} zero")
        self.single(trader, strategy).validate()


def batch_action_id(request_hash: bytes, index: int) -> bytes:
    """The id of a batch's action `index` (0-based): its request id, and the id of the order a place or modify
    creates. keccak256(requestHash ‖ uint256 index)."""
    return keccak256(request_hash + index.to_bytes(32, "big"))


@_spec
@dataclass(frozen=True, slots=True)
class Batch(_Request):
    """Up to MAX_BATCH_ACTIONS place/cancel/modify actions of one strategy under one signature, applied in order,
    each accepted or rejected on its own — or, `atomic`, all of them or none: then every place is post-only and
    every cancel or modify names an open (for a modify: post-only) order, so nothing trades (docs/engine.md §3.1)."""

    trader: Address
    strategy: Bytes32
    actions: Actions
    nonce: Uint64
    timestamp: Uint64
    atomic: Bool = False

    TYPE_ID: ClassVar[int] = 7
    PRIMARY_TYPE: ClassVar[str] = "Batch"
    REFERENCED: ClassVar[tuple[type, ...]] = (Action,)

    def validate(self) -> None:
        _Request.validate(self)
        if not isinstance(self.actions, tuple) or not 0 < len(self.actions) <= MAX_BATCH_ACTIONS:
            raise RequestRejected("bad_field", f"a batch carries 1..{MAX_BATCH_ACTIONS} actions")
        for i, action in enumerate(self.actions):
            try:
                action.validate(self.trader, self.strategy)
            except RequestRejected as exc:
                raise RequestRejected(exc.reason, f"action {i}: {exc}") from None
            if self.atomic and action.kind == ActionKind.PLACE and action.order_type != OrderType.POST_ONLY:
                raise RequestRejected("bad_field", f"action {i}: an atomic batch places post-only orders only")


class AgentScope(IntEnum):
    TRADE = 1  # place, cancel, modify and batch: never withdraw, transfer, create strategies or approve agents


@_spec
@dataclass(frozen=True, slots=True)
class ApproveAgent(_Request):
    """Let `agent` sign the trader's trading requests for `strategy` (zero: every strategy) until `expiry` (ms,
    sequenced time). Approving an agent again replaces the approval (new expiry, new start)."""

    trader: Address
    strategy: Bytes32
    agent: Address
    scope: Uint8
    expiry: Uint64
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 8
    PRIMARY_TYPE: ClassVar[str] = "ApproveAgent"

    def validate(self) -> None:
        _Request.validate(self)
        if self.agent == ZERO_ADDRESS or self.agent == self.trader:
            raise RequestRejected("bad_field", "agent must be a non-zero address other than the trader")
        if self.scope != AgentScope.TRADE:
            raise RequestRejected("bad_field", "scope must be 1 (trade)")
        if self.expiry == 0:
            raise RequestRejected("bad_field", "expiry must be a time (ms)")


@_spec
@dataclass(frozen=True, slots=True)
class RevokeAgent(_Request):
    trader: Address
    strategy: Bytes32
    agent: Address
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 9
    PRIMARY_TYPE: ClassVar[str] = "RevokeAgent"

    def validate(self) -> None:
        _Request.validate(self)
        if self.agent == ZERO_ADDRESS:
            raise RequestRejected("bad_field", "agent is the zero address")


@_spec
@dataclass(frozen=True, slots=True)
class ScheduleCancel(_Request):
    """A dead man's switch: when the sequenced time reaches `time`, every open order of the trader's `strategy`
    (zero: every strategy) in `market` (zero: every market) is cancelled, unless a later ScheduleCancel for the same
    (strategy, market) moved it; `time` 0 clears it."""

    trader: Address
    strategy: Bytes32
    market: Bytes32
    time: Uint64
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 10
    PRIMARY_TYPE: ClassVar[str] = "ScheduleCancel"


@_spec
@dataclass(frozen=True, slots=True)
class Transfer(_Request):
    """Move `amount` of `token` from the trader's `strategy` to its `to_strategy` (an existing one): as much as a
    withdraw intent could take from it now."""

    trader: Address
    strategy: Bytes32
    to_strategy: Bytes32
    token: Address
    amount: Uint256
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 11
    PRIMARY_TYPE: ClassVar[str] = "Transfer"

    def validate(self) -> None:
        _Request.validate(self)
        if self.to_strategy == self.strategy:
            raise RequestRejected("bad_field", "toStrategy must differ from strategy")
        if self.token == ZERO_ADDRESS:
            raise RequestRejected("bad_field", "token is the zero address")
        _check_quantity("amount", self.amount, positive=True)


class Direction(IntEnum):
    RISES_TO = 0  # fires when the mark price is at or above triggerPrice
    FALLS_TO = 1  # fires when the mark price is at or below triggerPrice


@_spec
@dataclass(frozen=True, slots=True)
class PlaceTrigger(_Request):
    """A conditional order (docs/engine.md §4.8): when a sequenced price update moves the mark to `trigger_price`
    in `direction`, the order (`order_type` market, limit or IOC, `price`, `size`) is placed as a PlaceOrder whose
    id is this request's hash. Stop-loss / take-profit of a position: `attached` (reduce-only; `size` 0: the whole
    position when it fires; cancelled when the position closes). Triggers sharing a non-zero `group` cancel each other
    when one fires (one-cancels-other)."""

    trader: Address
    strategy: Bytes32
    market: Bytes32
    side: Uint8
    direction: Uint8
    trigger_price: Uint256
    order_type: Uint8
    price: Uint256
    size: Uint256
    reduce_only: Bool
    attached: Bool
    group: Bytes32
    client_order_id: Bytes32
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 12
    PRIMARY_TYPE: ClassVar[str] = "PlaceTrigger"

    def validate(self) -> None:
        _Request.validate(self)
        if self.market == ZERO32:
            raise RequestRejected("bad_field", "market is zero")
        if self.side not in (Side.BUY, Side.SELL) or self.direction not in (Direction.RISES_TO, Direction.FALLS_TO):
            raise RequestRejected("bad_field", "side and direction are 0 or 1")
        if self.order_type not in (OrderType.LIMIT, OrderType.LIMIT_IOC, OrderType.MARKET):
            raise RequestRejected("bad_field", "a trigger places a limit (0), IOC (1) or market (3) order")
        _check_order_price(self.order_type, self.price)
        _check_quantity("triggerPrice", self.trigger_price, positive=True)
        if self.attached:
            if not self.reduce_only:
                raise RequestRejected("bad_field", "a trigger attached to a position is reduce-only")
            _check_quantity("size", self.size, positive=False)
        else:
            _check_quantity("size", self.size, positive=True)


MAX_TWAP_SLICES = 1000


@_spec
@dataclass(frozen=True, slots=True)
class PlaceTwap(_Request):
    """A TWAP order (docs/engine.md §4.9): `size` spread over `duration` ms of sequenced time in slices every
    `interval` ms, each an immediate-or-cancel order (at `limit_price`, or a market order when it is 0) for what the
    schedule calls for so far less what has filled."""

    trader: Address
    strategy: Bytes32
    market: Bytes32
    side: Uint8
    size: Uint256
    duration: Uint64
    interval: Uint64
    limit_price: Uint256
    reduce_only: Bool
    nonce: Uint64
    timestamp: Uint64

    TYPE_ID: ClassVar[int] = 13
    PRIMARY_TYPE: ClassVar[str] = "PlaceTwap"

    def validate(self) -> None:
        _Request.validate(self)
        if self.market == ZERO32:
            raise RequestRejected("bad_field", "market is zero")
        if self.side not in (Side.BUY, Side.SELL):
            raise RequestRejected("bad_field", "side must be 0 (buy) or 1 (sell)")
        _check_quantity("size", self.size, positive=True)
        _check_quantity("limitPrice", self.limit_price, positive=False)
        if not 1_000 <= self.interval <= self.duration or self.duration // self.interval > MAX_TWAP_SLICES:
            raise RequestRejected("bad_field", f"1 s <= interval <= duration, at most {MAX_TWAP_SLICES} slices")


TraderRequest = (
    PlaceOrder | CancelOrder | CancelAll | ModifyOrder | WithdrawIntent | CreateStrategy | Batch | ApproveAgent
    | RevokeAgent | ScheduleCancel | Transfer | PlaceTrigger | PlaceTwap
)
REQUEST_TYPES: dict[str, type] = {
    cls.PRIMARY_TYPE: cls
    for cls in (
        PlaceOrder, CancelOrder, CancelAll, ModifyOrder, WithdrawIntent, CreateStrategy, Batch, ApproveAgent,
        RevokeAgent, ScheduleCancel, Transfer, PlaceTrigger, PlaceTwap,
    )
}
REQUEST_TYPES_BY_ID: dict[int, type] = {cls.TYPE_ID: cls for cls in REQUEST_TYPES.values()}
# what an approved agent may sign for its trader (AgentScope.TRADE); everything else only the trader's own key
AGENT_SIGNABLE: frozenset[type] = frozenset(
    (PlaceOrder, CancelOrder, CancelAll, ModifyOrder, Batch, ScheduleCancel, PlaceTrigger, PlaceTwap)
)


def strategy_id(name: str) -> bytes:
    """A readable strategy id: the UTF-8 name, right-padded with zeros to 32 bytes (like Solidity bytes32 literals)."""
    raw = name.encode()
    if not 0 < len(raw) <= 32:
        raise ProtocolError("a strategy name is 1..32 bytes of UTF-8")
    return raw.ljust(32, b"\x00")


market_id = strategy_id  # markets use the same readable bytes32 form ("ETHP" -> 0x45544850…00)


# ---------------------------------------------------------------- signed requests

@dataclass(frozen=True, slots=True)
class SignedRequest:
    request: TraderRequest
    signature: bytes  # r ‖ s ‖ v
    request_hash: bytes  # the EIP-712 digest under the node's domain
    signer: bytes = b""  # who signed: the trader, or an agent of the trader's (empty: the trader)

    def __post_init__(self) -> None:
        if not self.signer:
            object.__setattr__(self, "signer", self.request.trader)

    @property
    def trader(self) -> bytes:
        return self.request.trader

    @property
    def by_agent(self) -> bool:
        return self.signer != self.request.trader

    def to_json(self) -> dict:
        return {
            "type": self.request.PRIMARY_TYPE,
            "message": self.request.message_json(),
            "signature": "0x" + self.signature.hex(),
        }


def sign_request(
    request: TraderRequest, domain: Domain | DomainCache, private_key: bytes, signer: bytes | None = None
) -> SignedRequest:
    """Sign with `private_key`, whose address is `signer` (derived when not given): the trader's own key, or an
    agent's signing for it."""
    digest = request.digest(domain)
    if signer is None:
        signer = address_of(private_key)
    return SignedRequest(request, sign_digest(digest, private_key), digest, signer)


def verify_request(
    request: TraderRequest, signature: bytes, domain: Domain | DomainCache, *, agents: bool = False
) -> SignedRequest:
    """Check the stateless rules and that `trader` signed the request under `domain` — or, with `agents`, that
    somebody signed a type an agent may sign (AGENT_SIGNABLE): the result's `signer` then names the agent, whose
    approval the caller must check against the state (docs/protocol.md §7.4).

    Raises RequestRejected (reason: bad_field, signer_mismatch, bad_signature, bad_signature_format,
    malleable_signature).
    """
    request.validate()
    digest = request.digest(domain)
    try:
        signer = recover_signer(digest, signature)
    except SignatureError as exc:
        raise RequestRejected(exc.reason, str(exc)) from None
    if signer != request.trader and not (agents and type(request) in AGENT_SIGNABLE):
        raise RequestRejected(
            "signer_mismatch",
            "the signature does not recover to the trader under this exchange's domain (wrong key, chain or contract)",
        )
    return SignedRequest(request, signature, digest, signer)


def request_from_json(doc) -> tuple[TraderRequest, bytes, dict | None]:
    """Parse the wire form {"type", "message", "signature", optional "domain"} without verifying the signature.

    Unknown or missing keys are refused so the signed message is exactly what the trader sees.
    Returns (request, signature, domain-or-None). Raises RequestRejected.
    """
    if not isinstance(doc, dict):
        raise RequestRejected("bad_schema", "the request must be a JSON object")
    extra = set(doc) - {"type", "message", "signature", "domain"}
    if extra:
        raise RequestRejected("bad_schema", f"unknown keys: {sorted(extra)[:5]}")
    cls = REQUEST_TYPES.get(doc.get("type")) if isinstance(doc.get("type"), str) else None
    if cls is None:
        raise RequestRejected("unknown_type", f"type must be one of {sorted(REQUEST_TYPES)}")
    message = doc.get("message")
    if not isinstance(message, dict):
        raise RequestRejected("bad_schema", "message must be a JSON object")
    names = {name for _, name, _ in cls.FIELDS}
    if set(message) != names:
        missing, unknown = names - set(message), set(message) - names
        raise RequestRejected("bad_schema", f"{cls.PRIMARY_TYPE} fields: missing {sorted(missing)}, unknown {sorted(unknown)[:5]}")
    try:
        values = [_field_from_json(abi, name, message[name]) for _, name, abi in cls.FIELDS]
        signature = parse_signature(doc.get("signature"))
    except SignatureError as exc:
        raise RequestRejected(exc.reason, str(exc)) from None
    except ProtocolError as exc:
        raise RequestRejected("bad_field", str(exc)) from None
    domain = doc.get("domain")
    if domain is not None:
        if not isinstance(domain, dict) or set(domain) - {"chainId", "verifyingContract"}:
            raise RequestRejected("bad_schema", "domain is {chainId, verifyingContract}")
        try:
            domain = {
                "chainId": from_json("uint256", "domain.chainId", domain.get("chainId")),
                "verifyingContract": from_json("address", "domain.verifyingContract", domain.get("verifyingContract")),
            }
        except ProtocolError as exc:
            raise RequestRejected("bad_field", str(exc)) from None
    return cls(*values), signature, domain


def _field_from_json(abi: str, name: str, value):
    if abi != "Action[]":
        return from_json(abi, name, value)
    if not isinstance(value, list) or not 0 < len(value) <= MAX_BATCH_ACTIONS:
        raise ProtocolError(f"{name}: a list of 1..{MAX_BATCH_ACTIONS} actions")
    names = [field for _, field, _ in Action.FIELDS]
    actions = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != set(names):
            raise ProtocolError(f"{name}[{i}]: an object with exactly {names}")
        actions.append(Action(*(from_json(a, f"{name}[{i}].{f}", item[f]) for _, f, a in Action.FIELDS)))
    return tuple(actions)


# ---------------------------------------------------------------- log entries

def encode_entry(signed: SignedRequest) -> bytes:
    """0x01 ‖ type id ‖ fields ‖ r ‖ s ‖ v — the exact signed content, re-verifiable by any follower. Each static
    field is its ABI word; a list of actions is uint256 count ‖ each action's words (§7.3)."""
    request = signed.request
    parts = [bytes([ENTRY_TRADER_REQUEST, request.TYPE_ID])]
    for attr, _, abi in request.FIELDS:
        value = getattr(request, attr)
        if abi == "Action[]":
            parts.append(len(value).to_bytes(32, "big"))
            parts.extend(action.words() for action in value)
        else:
            parts.append(encode_word(abi, value))
    parts.append(signed.signature)
    return b"".join(parts)


def decode_entry(data: bytes) -> tuple[TraderRequest, bytes]:
    """Inverse of encode_entry, refusing any entry that is not exactly one well-formed request (ProtocolError)."""
    if len(data) < 2 or data[0] != ENTRY_TRADER_REQUEST:
        raise ProtocolError("not a trader-request entry")
    cls = REQUEST_TYPES_BY_ID.get(data[1])
    if cls is None:
        raise ProtocolError(f"unknown request type id {data[1]}")
    pos = 2
    end = len(data) - 65

    def word(name: str) -> bytes:
        nonlocal pos
        if pos + 32 > end:
            raise ProtocolError(f"{cls.PRIMARY_TYPE} entry too short at {name}")
        pos += 32
        return data[pos - 32 : pos]

    values = []
    for _, name, abi in cls.FIELDS:
        if abi == "Action[]":
            count = int.from_bytes(word(name), "big")
            if not 0 < count <= MAX_BATCH_ACTIONS:
                raise ProtocolError(f"{name}: {count} actions, 1..{MAX_BATCH_ACTIONS} allowed")
            values.append(tuple(
                Action(*(_decode_word(a, f"{name}.{f}", word(name)) for _, f, a in Action.FIELDS)) for _ in range(count)
            ))
        else:
            values.append(_decode_word(abi, name, word(name)))
    if pos != end:
        raise ProtocolError(f"{cls.PRIMARY_TYPE} entry must be {pos + 65} bytes, got {len(data)}")
    return cls(*values), data[end:]


# ---------------------------------------------------------------- forced requests (docs/protocol.md §6.5)

# A forced request is a trader request put in the L1 inbox by the trader itself (contracts/modules/forced.vy): the
# caller is the trader, the forced seq stands in for nonce and timestamp, so its fields are the rest.
NOT_FORCED_FIELDS = ("trader", "nonce", "timestamp")
# the request types the contract takes (contracts/modules/forced.vy): every one with static fields only (a batch is
# as many single forced requests) but the dead man's switch, which guards live sessions, not L1 exits, and transfers
# (a forced WithdrawIntent from each strategy reaches the same money), triggers and TWAPs (an exit from L1 needs
# neither)
FORCEABLE: frozenset[type] = frozenset(
    cls for cls in REQUEST_TYPES.values()
    if all(abi != "Action[]" for _, _, abi in cls.FIELDS) and cls not in (ScheduleCancel, Transfer, PlaceTrigger, PlaceTwap)
)


def forced_fields(request: TraderRequest) -> tuple[int, bytes]:
    """(type id, fields) of `force_request` for this request: its ABI words less trader, nonce and timestamp."""
    if type(request) not in FORCEABLE:
        raise ProtocolError(f"a {request.PRIMARY_TYPE} cannot be forced")
    request.validate()
    words = [encode_word(abi, getattr(request, attr)) for attr, _, abi in request.FIELDS if attr not in NOT_FORCED_FIELDS]
    return request.TYPE_ID, b"".join(words)


def decode_forced_fields(request_type: int, trader: bytes, fields: bytes) -> TraderRequest:
    """The request a forced request stands for, with nonce and timestamp 0; raises ProtocolError when the type is
    unknown or a word is not a canonical encoding of its field (the engine then rejects it as malformed)."""
    cls = REQUEST_TYPES_BY_ID.get(request_type)
    if cls is None or cls not in FORCEABLE:
        raise ProtocolError(f"request type id {request_type} cannot be forced")
    declared = [(attr, name, abi) for attr, name, abi in cls.FIELDS if attr not in NOT_FORCED_FIELDS]
    if len(fields) != 32 * len(declared):
        raise ProtocolError(f"{cls.PRIMARY_TYPE} forced fields are {32 * len(declared)} bytes, got {len(fields)}")
    values = {"trader": trader, "nonce": 0, "timestamp": 0}
    for i, (attr, name, abi) in enumerate(declared):
        values[attr] = _decode_word(abi, name, fields[32 * i : 32 * i + 32])
    return cls(**values)


def _decode_word(abi: str, name: str, word: bytes):
    if abi == "bytes32":
        return word
    if abi == "address":
        if word[:12] != b"\x00" * 12:
            raise ProtocolError(f"{name}: address word has non-zero padding")
        return word[12:]
    number = int.from_bytes(word, "big")
    if abi == "bool":
        if number > 1:
            raise ProtocolError(f"{name}: bool word is not 0 or 1")
        return bool(number)
    if number >> int(abi[4:]):
        raise ProtocolError(f"{name}: does not fit in {abi}")
    return number


# ---------------------------------------------------------------- receipts

RECEIPT_FIELDS = (
    ("request_hash", "requestHash", "bytes32"),
    ("request_index", "requestIndex", "uint64"),
    ("epoch", "epoch", "uint64"),
    ("sender", "sender", "address"),
    ("nonce", "nonce", "uint64"),
)
RECEIPT_TYPE_STRING = "Receipt(" + ",".join(f"{abi} {name}" for _, name, abi in RECEIPT_FIELDS) + ")"
RECEIPT_TYPEHASH = keccak256(RECEIPT_TYPE_STRING.encode())


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an operator attests after the request is committed on a quorum and applied: its place in the sequence.

    It claims sequencing, not finality: finality comes with the checkpoint of `epoch` (or a later one).
    """

    request_hash: bytes
    request_index: int
    epoch: int
    sender: bytes
    nonce: int

    def struct_hash(self) -> bytes:
        return keccak256(RECEIPT_TYPEHASH + b"".join(encode_word(abi, getattr(self, a)) for a, _, abi in RECEIPT_FIELDS))

    def digest(self, domain: Domain | DomainCache) -> bytes:
        return domain.digest(self.struct_hash())

    def sign(self, domain: Domain | DomainCache, private_key: "bytes | Signer") -> "SignedReceipt":
        if isinstance(private_key, Signer):
            return SignedReceipt(self, private_key.sign(self.digest(domain)))
        return SignedReceipt(self, sign_digest(self.digest(domain), private_key))

    def message_json(self) -> dict:
        return {name: to_json(abi, getattr(self, attr)) for attr, name, abi in RECEIPT_FIELDS}

    def typed_data(self, domain: Domain) -> dict:
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Receipt": [{"name": name, "type": abi} for _, name, abi in RECEIPT_FIELDS],
            },
            "primaryType": "Receipt",
            "domain": domain.to_typed_data(),
            "message": self.message_json(),
        }


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    receipt: Receipt
    signature: bytes

    def operator(self, domain: Domain | DomainCache) -> bytes:
        """The operator address that signed it (raises SignatureError if the signature is unacceptable)."""
        return recover_signer(self.receipt.digest(domain), self.signature)

    def to_json(self, domain: Domain | DomainCache) -> dict:
        out = self.receipt.message_json()
        out["operator"] = checksum_address(self.operator(domain))
        out["signature"] = "0x" + self.signature.hex()
        return out

    @classmethod
    def from_json(cls, doc) -> "SignedReceipt":
        if not isinstance(doc, dict):
            raise ProtocolError("a receipt is a JSON object")
        try:
            values = [from_json(abi, name, doc.get(name)) for _, name, abi in RECEIPT_FIELDS]
            return cls(Receipt(*values), parse_signature(doc.get("signature")))
        except SignatureError as exc:
            raise ProtocolError(str(exc)) from None


def verify_receipt(signed: SignedReceipt, domain: Domain | DomainCache, operators: set[bytes] | frozenset[bytes]) -> bytes:
    """The signing operator if it is in `operators`; raises ProtocolError otherwise."""
    operator = signed.operator(domain)
    if operator not in operators:
        raise ProtocolError(f"receipt signed by {checksum_address(operator)}, not a known operator")
    return operator


# ---------------------------------------------------------------- the request types as data (for other languages)

def request_schema() -> dict:
    """Every request type, the Action struct, the Receipt and the enums as one JSON-able document: what a client in
    another language generates its typed-data builders from (clients/js/src/request_types.json is this document; a
    test keeps the two equal). Field lists are in type-string order, named as in the signed message."""

    def fields(spec) -> list[dict]:
        return [{"name": name, "type": abi} for _, name, abi in spec]

    return {
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION},
        "replayWindowMs": REPLAY_WINDOW_MS,
        "notForcedFields": list(NOT_FORCED_FIELDS),
        "maxQuantity": str(MAX_QUANTITY),
        "maxBatchActions": MAX_BATCH_ACTIONS,
        "requests": {
            name: {
                "typeId": cls.TYPE_ID,
                "typeString": cls.TYPE_STRING,
                "typeHash": "0x" + cls.TYPEHASH.hex(),
                "fields": fields(cls.FIELDS),
                "referenced": [s.PRIMARY_TYPE for s in cls.REFERENCED],
                "agentSignable": cls in AGENT_SIGNABLE,
                "forceable": cls in FORCEABLE,  # `force_request(typeId, fields)` takes it (§6.5)
            }
            for name, cls in REQUEST_TYPES.items()
        },
        "structs": {"Action": {"typeString": Action.TYPE_STRING, "fields": fields(Action.FIELDS)}},
        "receipt": {"typeString": RECEIPT_TYPE_STRING, "typeHash": "0x" + RECEIPT_TYPEHASH.hex(),
                    "fields": fields(RECEIPT_FIELDS)},
        "enums": {
            enum.__name__: {member.name: member.value for member in enum}
            for enum in (Side, OrderType, ActionKind, AgentScope, Direction)
        },
    }
