"""Claiming withdrawals and escaping, from a proof: the user-driven settlement clock.

A proof (from the node API, `GET /v1/proofs/withdrawal|balance/{trader}/{token}`, or from the engine) is checked
locally first — it must be for this trader and token, lead to its root, and that root must be the one the
contract recorded for the epoch — so a bad or premature proof is a typed `ClaimError` and no transaction is sent.
Then `claim` (or `escape`) is sent and the contract's event says what was paid. Anyone may send a claim; the tokens
always go to the trader.

The sender is either an address the node has unlocked (a dev node, the embedded chain) or a private key (from an
eth-account keystore): `Sender`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD  # the token's Transfer log shares the receipt

from ..chain.inbox_report import deadline_of, freeze_due

try:  # the embedded chain (eth-tester) raises its own; it is installed with the operator extras, not with the SDK
    from eth_tester.exceptions import TransactionFailed
except ImportError:  # pragma: no cover - exercised by tests/test_packaging.py's SDK-only install

    class TransactionFailed(Exception):  # type: ignore[no-redef]
        """Never raised without eth-tester."""
from ..errors import DdxError
from ..protocol import items
from ..protocol.eip712 import from_json
from ..protocol.errors import ProtocolError
from ..protocol.proof import InclusionProof, NonInclusionProof, ProofError, verify_inclusion, verify_non_inclusion
from ..protocol.requests import forced_fields

ZERO = b"\x00" * 32


class ClaimError(DdxError, ValueError):
    """The claim or escape cannot succeed as asked (bad proof, epoch not recorded, nothing owed): nothing was sent."""


@dataclass(frozen=True)
class LeafProof:
    """A WITHDRAWAL (cumulative) or BALANCE (escape amount, credited deposits) leaf of `trader`/`token`, proven
    present under `root`. `from_api` and `from_engine` check the proof; `claim` and `escape` check a proof made any
    other way before sending anything (the contract verifies it again)."""

    kind: str  # "withdrawal" or "balance"
    trader: str
    token: str
    amount: int
    epoch: int
    root: bytes
    siblings: tuple[bytes, ...]
    deposited: int = 0  # BALANCE: the deposits the engine had credited to the pair (docs/protocol.md §2)

    def value(self) -> bytes:
        """The leaf's value encoding (docs/protocol.md §2)."""
        if self.kind == "withdrawal":
            return items.withdrawal_value(self.trader, self.token, self.amount)
        if self.kind == "balance":
            return items.balance_value(self.trader, self.token, self.amount, self.deposited)
        raise ClaimError(f"unknown leaf kind {self.kind!r}")

    def check(self) -> None:
        """Raise ClaimError unless the proof leads from this exact leaf to `root`. Verified once per object (it is
        immutable): `from_api` checks it, and `claim`/`escape` asking again cost nothing."""
        if self.__dict__.get("_verified"):
            return
        value = self.value()
        key = items.withdrawal_key(self.trader, self.token) if self.kind == "withdrawal" else items.balance_key(self.trader, self.token)
        if not verify_inclusion(self.root, InclusionProof(key, items.value_hash(value), tuple(self.siblings))):
            raise ClaimError(f"the {self.kind} proof of {self.trader}/{self.token} for {self.amount} does not lead to root 0x{self.root.hex()}")
        object.__setattr__(self, "_verified", True)

    @classmethod
    def from_api(cls, doc: dict, trader: str, token: str, kind: str = "withdrawal") -> "LeafProof":
        """The API's proof document: {"epoch", "root", "cumulative" | "amount" and "deposited", "proof": {"key",
        "value_hash", "siblings"}} (docs/protocol.md §4 JSON form)."""
        if not isinstance(doc, dict):
            raise ClaimError("proof document must be a JSON object")
        if doc.get("included") is False:
            raise ClaimError(f"{trader} has no {kind} leaf for {token} in epoch {doc.get('epoch')}: nothing proven to claim")
        try:
            trader, token = _address(trader), _address(token)
            proof = InclusionProof.from_json(doc["proof"])
            amount = _uint(doc.get("cumulative", doc.get("amount")), "amount")
            deposited = _uint(doc["deposited"], "deposited") if kind == "balance" else 0
            leaf = cls(kind, trader, token, amount, _uint(doc["epoch"], "epoch"), _hex32(doc["root"]), proof.siblings, deposited)
        except (KeyError, TypeError) as exc:
            raise ClaimError(f"malformed proof document: missing or wrong {exc}") from None
        except (ProofError, ProtocolError) as exc:
            raise ClaimError(f"malformed proof document: {exc}") from None
        expected_key = items.withdrawal_key(trader, token) if kind == "withdrawal" else items.balance_key(trader, token)
        if proof.key != expected_key:
            raise ClaimError(f"the proof is for another item than the {kind} leaf of {trader}/{token}")
        leaf.check()
        return leaf

    @classmethod
    def from_engine(cls, proofs: dict, trader: str, token: str, kind: str = "withdrawal") -> "LeafProof":
        """From `Engine.epoch_proofs(epoch, trader, token)` (the operator side; tests, the devnet)."""
        value = proofs[f"{kind}_value"]
        if value is None:
            raise ClaimError(f"{trader} has no {kind} leaf for {token} in epoch {proofs['epoch']}")
        amount, deposited = leaf_amounts(value)
        leaf = cls(kind, _address(trader), _address(token), amount, proofs["epoch"], proofs["root"], tuple(proofs[kind].siblings), deposited or 0)
        leaf.check()
        return leaf


def leaf_amounts(value: bytes) -> tuple[int, int | None]:
    """(amount, deposited or None) of a WITHDRAWAL or BALANCE value: abi.encode(uint8 kind, address trader,
    address token, uint256 amount[, uint256 deposited])."""
    try:
        if len(value) == 4 * 32:
            return items.decode_withdrawal_value(value)[2], None
        return tuple(items.decode_balance_value(value)[2:])
    except ProtocolError as exc:
        raise ClaimError(f"not a WITHDRAWAL or BALANCE value: {exc}") from None


@dataclass(frozen=True)
class AbsentBalance:
    """No BALANCE leaf for `trader`/`token` under `root`: the escape hatch then pays (0, 0) plus the on-chain
    deposits. Either a non-inclusion proof (docs/protocol.md §4) against a recorded epoch, or — before any
    checkpoint (`epoch` 0, `root` zero: the empty tree) — no siblings at all."""

    trader: str
    token: str
    epoch: int
    root: bytes
    siblings: tuple[bytes, ...] = ()
    other_key: bytes | None = None  # None: the path ends in an empty subtree
    other_value_hash: bytes | None = None
    kind = "balance"
    amount = 0
    deposited = 0

    @classmethod
    def before_any_checkpoint(cls, trader: str, token: str) -> "AbsentBalance":
        return cls(_address(trader), _address(token), 0, ZERO)

    def proof(self) -> NonInclusionProof:
        return NonInclusionProof(items.balance_key(self.trader, self.token), tuple(self.siblings), self.other_key, self.other_value_hash)

    def check(self) -> None:
        """Raise ClaimError unless the absence is proven under `root` (verified once per object, like LeafProof)."""
        if self.__dict__.get("_verified"):
            return
        if self.epoch == 0:
            if self.root != ZERO or self.siblings or self.other_key is not None:
                raise ClaimError("before any checkpoint the root is zero and an absence needs no proof")
        elif not verify_non_inclusion(self.root, self.proof()):
            raise ClaimError(f"the non-inclusion proof of {self.trader}/{self.token}'s balance does not lead to root 0x{self.root.hex()}")
        object.__setattr__(self, "_verified", True)

    @classmethod
    def from_engine(cls, proofs: dict, trader: str, token: str) -> "AbsentBalance":
        """From `Engine.epoch_proofs(epoch, trader, token)` when the pair has no BALANCE leaf."""
        proof = proofs["balance"]
        if not isinstance(proof, NonInclusionProof):
            raise ClaimError(f"{trader} has a balance leaf for {token} in epoch {proofs['epoch']}: use LeafProof")
        absent = cls(_address(trader), _address(token), proofs["epoch"], proofs["root"], tuple(proof.siblings), proof.other_key, proof.other_value_hash)
        absent.check()
        return absent

    @classmethod
    def from_api(cls, doc: dict, trader: str, token: str) -> "AbsentBalance":
        """The balance document for a pair without a leaf: {"included": false, "epoch", "root", "proof": {"key",
        "siblings"[, "other_key", "other_value_hash"]}}."""
        try:
            trader, token = _address(trader), _address(token)
            proof = NonInclusionProof.from_json(doc["proof"])
            absent = cls(trader, token, _uint(doc["epoch"], "epoch"), _hex32(doc["root"]), proof.siblings, proof.other_key, proof.other_value_hash)
        except (KeyError, TypeError) as exc:
            raise ClaimError(f"malformed proof document: missing or wrong {exc}") from None
        except (ProofError, ProtocolError) as exc:
            raise ClaimError(f"malformed proof document: {exc}") from None
        if proof.key != items.balance_key(trader, token):
            raise ClaimError(f"the proof is for another item than the balance leaf of {trader}/{token}")
        absent.check()
        return absent


def balance_from_api(doc: dict, trader: str, token: str) -> LeafProof | AbsentBalance:
    """GET /v1/proofs/balance's document: the leaf with its inclusion proof, or its absence."""
    if not isinstance(doc, dict):
        raise ClaimError("proof document must be a JSON object")
    if doc.get("included") is False:
        return AbsentBalance.from_api(doc, trader, token)
    return LeafProof.from_api(doc, trader, token, kind="balance")


@dataclass(frozen=True)
class Sender:
    """Who pays the gas: an unlocked `address` on the node, or a `private_key` signed here."""

    address: str
    private_key: bytes | None = None

    @classmethod
    def from_key(cls, key: bytes) -> "Sender":
        return cls(Account.from_key(key).address, key)


@dataclass(frozen=True)
class Payout:
    tx_hash: bytes | None  # None: nothing was owed, so nothing was sent
    paid: int
    unpaid: int  # owed but above the rate limit: stays claimable
    trader_balance_before: int
    trader_balance_after: int


def claim(w3: Web3, exchange, token_contract, proof: LeafProof, sender: Sender) -> Payout:
    """Pay `proof.trader` its cumulative withdrawable not yet claimed. A second claim of the same amount pays 0."""
    if proof.kind != "withdrawal":
        raise ClaimError("claim takes a withdrawal proof")
    proof.check()  # once per proof: free when from_api / from_engine made it
    _require_recorded(exchange, proof)
    before = token_contract.functions.balanceOf(proof.trader).call()
    already = exchange.functions.claimed(proof.trader, proof.token).call()
    if proof.amount <= already:
        return Payout(None, 0, 0, before, before)
    call = exchange.functions.claim(proof.trader, proof.token, proof.amount, proof.epoch, list(proof.siblings))
    receipt = _send(w3, call, sender)
    event = exchange.events.Claim().process_receipt(receipt, errors=DISCARD)[0]["args"]
    after = token_contract.functions.balanceOf(proof.trader).call()
    return Payout(bytes(receipt["transactionHash"]), int(event["paid"]), int(event["unpaid"]), before, after)


def freeze_due_at(exchange, coverage: tuple[int, int, int] | None = None) -> int:
    """When anyone may freeze the exchange (a timestamp; chain/inbox_report.py `freeze_due`). `coverage`: the
    contract's `inbox_coverage()`, when the caller has read it already."""
    fns = exchange.functions
    covered, count, since = coverage if coverage is not None else fns.inbox_coverage().call()
    return freeze_due(
        fns.last_checkpoint_at().call(), fns.escape_delay().call(), covered, count, since, fns.forced_deadline().call()
    )


def freeze_if_due(w3: Web3, exchange, sender: Sender) -> bool:
    """Freeze the exchange if it is due (freeze_due_at); False if not due yet. True if frozen (now or before)."""
    if exchange.functions.frozen().call():
        return True
    if w3.eth.get_block("latest")["timestamp"] < freeze_due_at(exchange):
        return False
    _send(w3, exchange.functions.freeze(), sender)
    return True


@dataclass(frozen=True)
class ForcedSubmission:
    """A forced request in the inbox: its seq, its transaction, and `deadline`: the time by which a recorded
    checkpoint covers it or anyone may freeze the exchange (the forced deadline after its generation starts; one
    generation later when it joined a running one, checkpoints.vy)."""

    seq: int
    tx_hash: bytes
    block_number: int
    deadline: int


def force_request(w3: Web3, exchange, request, sender: Sender) -> ForcedSubmission:
    """Put `request` (a protocol.requests request whose trader is the sender) in the L1 inbox."""
    if _address(request.trader) != _address(sender.address):
        raise ClaimError(f"a forced request is the sender's own: {sender.address} cannot force one for {_address(request.trader)}")
    request_type, fields = forced_fields(request)
    receipt = _send(w3, exchange.functions.force_request(request_type, fields), sender)
    event = exchange.events.ForcedRequest().process_receipt(receipt, errors=DISCARD)[0]["args"]
    block = int(receipt["blockNumber"])
    covered, pending, since = exchange.functions.inbox_coverage().call(block_identifier=block)
    deadline = exchange.functions.forced_deadline().call()
    position = int(event["deposits_before"]) + int(event["seq"])
    return ForcedSubmission(int(event["seq"]), bytes(receipt["transactionHash"]), block, deadline_of(position, pending, since, deadline))


def escape(
    w3: Web3, exchange, token_contract, balance: LeafProof | AbsentBalance, withdrawal: LeafProof | None, sender: Sender
) -> Payout:
    """Once frozen: pay the BALANCE leaf of the last checkpoint (or (0, 0) for a pair without one), the deposits made
    on-chain beyond the leaf's `deposited`, and any unclaimed withdrawable (docs/contracts.md, "Escape hatch")."""
    if balance.kind != "balance" or (withdrawal is not None and withdrawal.kind != "withdrawal"):
        raise ClaimError("escape takes a balance proof (or its absence) and, optionally, a withdrawal proof")
    if not exchange.functions.frozen().call():
        raise ClaimError("the exchange is not frozen: escape opens after the escape delay without a checkpoint")
    latest = exchange.functions.latest_epoch().call()
    for leaf in (balance, withdrawal):
        if leaf is None:
            continue
        leaf.check()  # once per proof: free when it was made from a document
        if leaf.epoch != latest:
            raise ClaimError(f"escape proves against the last checkpoint (epoch {latest}), not epoch {leaf.epoch}")
        if leaf.epoch != 0:
            _require_recorded(exchange, leaf)
    on_chain = exchange.functions.deposited(balance.trader, balance.token).call()
    escaped = exchange.functions.escaped(balance.trader, balance.token).call()
    owed_balance = escape_balance_owed(balance.amount, balance.deposited, on_chain, escaped)
    owed_withdrawal = 0
    if withdrawal is not None:
        owed_withdrawal = withdrawal.amount - min(withdrawal.amount, exchange.functions.claimed(balance.trader, balance.token).call())
    if owed_balance + owed_withdrawal == 0:
        raise ClaimError(f"nothing to escape: {balance.trader} was already paid its {balance.token} balance and withdrawable")
    before = token_contract.functions.balanceOf(balance.trader).call()
    cumulative, withdrawal_siblings = (withdrawal.amount, list(withdrawal.siblings)) if withdrawal else (0, [])
    other_key = other_value_hash = ZERO  # inclusion proofs, and absences whose path ends in an empty subtree
    if isinstance(balance, AbsentBalance):
        other_key, other_value_hash = balance.other_key or ZERO, balance.other_value_hash or ZERO
    call = exchange.functions.escape(
        balance.trader, balance.token, balance.amount, balance.deposited, list(balance.siblings),
        cumulative, withdrawal_siblings, other_key, other_value_hash,
    )
    receipt = _send(w3, call, sender)
    event = exchange.events.Escape().process_receipt(receipt, errors=DISCARD)[0]["args"]
    after = token_contract.functions.balanceOf(balance.trader).call()
    return Payout(bytes(receipt["transactionHash"]), int(event["paid"]), int(event["unpaid"]), before, after)


def escape_balance_owed(amount: int, leaf_deposited: int, on_chain_deposited: int, escaped: int) -> int:
    """The balance part of an escape, as `custody.vy` computes it: the leaf's `amount`, plus the deposits made
    on-chain that the checkpoint had not credited, minus what was escaped already — with no floor on the middle
    term. A leaf crediting more than the chain ever received (`leaf_deposited > on_chain_deposited`) can only come
    from a lying quorum; its phantom deposits are deducted from the payout rather than ignored, so the escape never
    pays money that did not arrive (docs/contracts.md, "Escape hatch")."""
    return max(0, amount + on_chain_deposited - leaf_deposited - escaped)


def _require_recorded(exchange, proof: LeafProof) -> None:
    recorded = bytes(exchange.functions.checkpoint_root(proof.epoch).call())
    if recorded == ZERO:
        latest = exchange.functions.latest_epoch().call()
        raise ClaimError(f"epoch {proof.epoch} is not recorded on-chain (latest recorded: {latest}): wait for its checkpoint")
    if recorded != proof.root:
        raise ClaimError(f"epoch {proof.epoch} was recorded with root 0x{recorded.hex()}, the proof is for 0x{proof.root.hex()}")


def _send(w3: Web3, call, sender: Sender) -> dict:
    from web3.exceptions import ContractLogicError

    try:
        if sender.private_key is None:
            tx_hash = call.transact({"from": sender.address})
        else:
            tx = call.build_transaction({"from": sender.address, "nonce": w3.eth.get_transaction_count(sender.address, "pending")})
            signed = Account.sign_transaction(tx, sender.private_key)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except (ContractLogicError, TransactionFailed) as exc:  # eth-tester (the embedded chain) raises its own
        raise ClaimError(f"the contract refused: {exc}") from None
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise ClaimError(f"transaction 0x{bytes(tx_hash).hex()} reverted")
    return receipt


def _address(value) -> str:
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        value = "0x" + bytes(value).hex()
    if not isinstance(value, str) or not is_address(value):
        raise ClaimError(f"not an address: {value!r:.60}")
    return to_checksum_address(value)


def _uint(value, what: str) -> int:
    """An integer of an API document: a decimal string (docs/protocol.md §7.0)."""
    try:
        return from_json("uint256", what, value)
    except ProtocolError as exc:
        raise ClaimError(str(exc)) from None


def _hex32(value) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise ClaimError(f"expected a 0x-prefixed 32-byte hex string, got {value!r:.80}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ClaimError(f"not hex: {value!r:.80}") from None
