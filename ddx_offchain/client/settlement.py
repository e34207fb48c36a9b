"""The settlement service of the SDK: request a withdrawal, follow it, claim it, escape — over the operators' API
(`DdxClient`) and the chain (web3), so a CLI, a script or an app only chooses and prints.

    async with DdxClient(api_urls, domain, operators) as client:
        settlement = Settlement.connect(client, rpc_url, manifest)
        receipt = await settlement.request_withdrawal(trader, token, amount)
        status = await settlement.status(trader.address, token)          # executed / checkpointed / claimed / claimable
        proof = await settlement.claimable_proof(trader.address, token)  # waits for a recorded checkpoint covering it
        payout = settlement.claim(proof, Sender.from_key(key))

Each proof is verified once, where it becomes a `LeafProof` (its leaf folds to the root it names); the contract's
recorded root is compared once, before sending (claims.py); the contract checks both again, as it must.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from eth_utils import to_checksum_address
from web3 import Web3

from ..deployment.artifacts import shipped_abi
from ..errors import DdxError
from .api import DdxClient, RequestRefused, VerifiedReceipt
from .claims import (
    AbsentBalance,
    ClaimError,
    ForcedSubmission,
    LeafProof,
    Payout,
    Sender,
    balance_from_api,
    claim,
    escape,
    force_request,
    freeze_due_at,
    freeze_if_due,
)
from .signer import Trader


class SettlementError(DdxError):
    """What a settlement step cannot do (unreachable chain, nothing to claim yet, escape not open): the message
    says what to do next."""

    reason = "settlement"


@dataclass(frozen=True)
class WithdrawalStatus:
    """Where a trader's withdrawals of one token stand, on both clocks."""

    trader: str
    token: str
    executed: int  # cumulative withdrawable in the engine now (sequenced, not final)
    latest_recorded: int  # the last epoch recorded on-chain
    epoch: int | None  # the epoch of the proof below (the last recorded one the operators prove against)
    checkpointed: int | None  # cumulative withdrawable in that epoch's leaf (None: no recorded checkpoint yet)
    recorded: bool  # that epoch's root is the one recorded on-chain
    claimed: int  # paid out by the contract so far
    document: dict | None  # the proof document (to save for a later claim or escape)

    @property
    def claimable(self) -> int:
        return max(0, (self.checkpointed or 0) - self.claimed) if self.recorded else 0


class Settlement:
    def __init__(self, client: DdxClient, w3: Web3, exchange, token_abi: list) -> None:
        self.client = client
        self.w3 = w3
        self.exchange = exchange
        self.token_abi = token_abi

    @classmethod
    def connect(cls, client: DdxClient, rpc: str, manifest) -> "Settlement":
        """Over the chain at `rpc`, which must be the manifest's chain."""
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 15}))
        if not w3.is_connected():
            raise SettlementError(f"cannot reach the chain at {rpc}")
        if w3.eth.chain_id != manifest.chain_id:
            raise SettlementError(f"{rpc} is chain {w3.eth.chain_id}, the manifest is for chain {manifest.chain_id}")
        exchange = w3.eth.contract(address=manifest.exchange, abi=shipped_abi("Exchange"))
        return cls(client, w3, exchange, shipped_abi("MockERC20"))  # ERC-20 views and Transfer events

    def token(self, address: str):
        return self.w3.eth.contract(address=to_checksum_address(address), abi=self.token_abi)

    # ---- the sequencing clock --------------------------------------------------------------------------------

    async def request_withdrawal(self, trader: Trader, token: str, amount: int, strategy: str = "main") -> VerifiedReceipt:
        """Sign and submit a withdraw intent; the operator's verified receipt (sequenced, not yet final)."""
        if amount <= 0:
            raise SettlementError("the amount must be positive")
        try:
            return await self.client.submit(trader.withdraw_intent(bytes.fromhex(token[2:]), amount, strategy=strategy))
        except RequestRefused as exc:
            raise SettlementError(f"refused: {exc}") from None

    async def executed(self, trader: str, token: str) -> int:
        """The trader's cumulative withdrawable of `token` in the engine now."""
        try:
            state = await self.client.trader_state(bytes.fromhex(trader[2:]))
        except RequestRefused:
            return 0
        return max((int(b["withdrawable"]) for b in state.get("balances", []) if b["token"].lower() == token.lower()), default=0)

    async def proof_document(self, kind: str, trader: str, token: str, epoch: int | None = None) -> dict | None:
        """GET /v1/proofs/{kind}/… (against `epoch`, by default the last recorded one); None when there is none."""
        try:
            return await self.client.proof_document(kind, bytes.fromhex(trader[2:]), bytes.fromhex(token[2:]), epoch)
        except RequestRefused as exc:
            if exc.status == 404:
                return None
            raise SettlementError(f"no operator gave the {kind} proof: {exc}") from None

    # ---- the checkpoint clock --------------------------------------------------------------------------------

    def is_recorded(self, epoch: int, root: bytes) -> bool:
        return bytes(self.exchange.functions.checkpoint_root(epoch).call()) == root

    async def status(self, trader: str, token: str) -> WithdrawalStatus:
        trader, token = to_checksum_address(trader), to_checksum_address(token)
        doc = await self.proof_document("withdrawal", trader, token)
        executed = await self.executed(trader, token)
        claimed = self.exchange.functions.claimed(trader, token).call()
        latest = self.exchange.functions.latest_epoch().call()
        if doc is None:
            return WithdrawalStatus(trader, token, executed, latest, None, None, False, claimed, None)
        proof = LeafProof.from_api(doc, trader, token) if doc.get("included", True) else None
        epoch, amount = int(doc["epoch"]), (proof.amount if proof else 0)
        recorded = self.is_recorded(epoch, bytes.fromhex(doc["root"][2:]))
        return WithdrawalStatus(trader, token, executed, latest, epoch, amount, recorded, claimed, doc)

    async def claimable_proof(self, trader: str, token: str, wait_s: float = 120.0, poll_s: float = 1.0) -> LeafProof | None:
        """The proof of the newest recorded checkpoint that pays something; None when nothing is owed (everything
        executed was claimed). Waits up to `wait_s` for a checkpoint covering the withdrawal to be recorded."""
        trader, token = to_checksum_address(trader), to_checksum_address(token)
        claimed = self.exchange.functions.claimed(trader, token).call()
        if await self.executed(trader, token) <= claimed:
            return None
        deadline = time.monotonic() + wait_s
        while True:
            doc = await self.proof_document("withdrawal", trader, token)
            if doc is not None and doc.get("included", True):
                proof = LeafProof.from_api(doc, trader, token)  # the one verification of this proof
                if proof.amount > claimed and self.is_recorded(proof.epoch, proof.root):
                    return proof
            if time.monotonic() > deadline:
                what = "no recorded checkpoint yet" if doc is None else \
                    f"no recorded checkpoint covers the withdrawal yet (latest proof: epoch {doc['epoch']})"
                raise SettlementError(f"{what} after {wait_s:.0f} s: try again later")
            await asyncio.sleep(poll_s)

    def claim(self, proof: LeafProof, sender: Sender) -> Payout:
        return claim(self.w3, self.exchange, self.token(proof.token), proof, sender)

    # ---- forced requests (through L1, when the operators do not take a request) -----------------------------

    def force(self, request, sender: Sender) -> ForcedSubmission:
        """Put `request` (the sender's own; nonce and timestamp are not used) in the L1 inbox."""
        try:
            return force_request(self.w3, self.exchange, request, sender)
        except ClaimError as exc:
            raise SettlementError(str(exc)) from None

    async def position(self, trader: str, market: bytes, strategy: bytes) -> int:
        """The trader's signed position size in `market` (strategy) as the operators' engine has it now."""
        try:
            state = await self.client.trader_state(bytes.fromhex(trader[2:]))
        except RequestRefused as exc:
            raise SettlementError(f"no operator gave the position (pass --side and --size): {exc}") from None
        for p in state.get("positions", []):
            if bytes.fromhex(p["market"][2:]) == market and bytes.fromhex(p["strategy"][2:]) == strategy:
                return int(p["size"])
        return 0

    def inbox_status(self) -> dict:
        """The inbox and its deadline as the contract has them: entries, what recorded checkpoints cover, and when
        anyone may freeze if nothing is covered before."""
        deposits, forced, _ = self.exchange.functions.inbox_head().call()
        coverage = self.exchange.functions.inbox_coverage().call()
        covered, pending, since = coverage
        return {
            "deposits": deposits,
            "forced": forced,
            "covered": covered,
            "pendingSince": since if pending > covered else None,
            "freezeDueAt": freeze_due_at(self.exchange, coverage),
            "forcedDeadline": self.exchange.functions.forced_deadline().call(),
            "frozen": self.exchange.functions.frozen().call(),
        }

    # ---- the escape hatch ------------------------------------------------------------------------------------

    async def escape_proofs(self, trader: str, token: str) -> tuple[LeafProof | AbsentBalance, LeafProof | None]:
        """The BALANCE leaf (or its absence) and the WITHDRAWAL leaf (if any) of the contract's last checkpoint,
        from the operators while they still serve it."""
        trader, token = to_checksum_address(trader), to_checksum_address(token)
        latest = self.exchange.functions.latest_epoch().call()
        if latest == 0:  # nothing was ever checkpointed: every pair is absent from the empty tree
            return AbsentBalance.before_any_checkpoint(trader, token), None
        balance = await self.proof_document("balance", trader, token, latest)
        if balance is None:
            raise SettlementError(f"the operators no longer hold epoch {latest}: use proof documents saved earlier")
        withdrawal = await self.proof_document("withdrawal", trader, token, latest)
        return self.proofs_from_documents(trader, token, balance, withdrawal)

    def proofs_from_documents(
        self, trader: str, token: str, balance: dict | None, withdrawal: dict | None
    ) -> tuple[LeafProof | AbsentBalance, LeafProof | None]:
        """Saved proof documents (from `status`, while operators were up) as escape proofs."""
        trader, token = to_checksum_address(trader), to_checksum_address(token)
        if self.exchange.functions.latest_epoch().call() == 0:
            return AbsentBalance.before_any_checkpoint(trader, token), None
        if balance is None:
            raise SettlementError("the last checkpoint's BALANCE proof document is needed")
        leaf = balance_from_api(balance, trader, token)
        paid = LeafProof.from_api(withdrawal, trader, token) if withdrawal and withdrawal.get("included", True) else None
        return leaf, paid

    def escape(self, balance: LeafProof | AbsentBalance, withdrawal: LeafProof | None, sender: Sender) -> Payout:
        """Freeze the exchange if the escape delay is over, then withdraw what the proofs and deposits entitle."""
        if not freeze_if_due(self.w3, self.exchange, sender):
            raise SettlementError(
                "the exchange cannot be frozen yet: the operators checkpointed recently and cover the inbox in time "
                f"(freezable from {freeze_due_at(self.exchange)})"
            )
        try:
            return escape(self.w3, self.exchange, self.token(balance.token), balance, withdrawal, sender)
        except ClaimError as exc:
            raise SettlementError(str(exc)) from None
