"""A thin web3 binding of the deployed exchange: the calls a relayer, a watcher or a trader makes.

Everything here is I/O over a `web3.Web3`; messages and signatures come from ddx_offchain.protocol. The demo
(ddx_offchain/devnet) uses it; the checkpoint relay and deposit watcher can too.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.logs import DISCARD

from ..deployment.manifest import Manifest
from ..errors import DdxError
from ..protocol import operator_messages as om
from ..protocol.inbox import InboxCursor
from ..protocol.proof import InclusionProof, NonInclusionProof


class ExchangeCallError(DdxError, RuntimeError):
    """A transaction to the exchange reverted or was not mined."""


@dataclass(frozen=True)
class DepositEvent:
    seq: int
    trader: str
    strategy: bytes
    token: str
    amount: int
    depositor: str
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    gas_used: int  # whole-transaction gas: 21,000 + calldata + execution
    logs: tuple


class ExchangeClient:
    def __init__(self, w3: Web3, manifest: Manifest, exchange_abi: list, token_abi: list | None = None):
        self.w3 = w3
        self.manifest = manifest
        self.contract = w3.eth.contract(address=manifest.exchange, abi=exchange_abi)
        self._token_abi = token_abi

    # ---- reads --------------------------------------------------------------------------------------------

    def domain(self) -> om.Domain:
        return om.Domain(chain_id=self.w3.eth.chain_id, verifying_contract=self.manifest.exchange)

    def operator_set(self) -> om.OperatorSet:
        set_id, threshold, members = self.contract.functions.operator_set().call()
        return om.OperatorSet(set_id, threshold, tuple(members), bool(self.contract.functions.supermajority_required().call()))

    def latest_checkpoint(self) -> tuple[int, bytes, int]:
        epoch, root, recorded_at = self.contract.functions.latest_checkpoint().call()
        return epoch, bytes(root), recorded_at

    def inbox_head(self) -> InboxCursor:
        deposits, forced, acc = self.contract.functions.inbox_head().call()
        return InboxCursor(deposits, forced, bytes(acc))

    def claimed(self, trader: str, token: str) -> int:
        return self.contract.functions.claimed(trader, token).call()

    def token(self, address: str):
        if self._token_abi is None:
            raise ExchangeCallError("no token ABI given")
        return self.w3.eth.contract(address=address, abi=self._token_abi)

    # ---- writes -------------------------------------------------------------------------------------------

    def deposit(self, sender: str, token: str, amount: int) -> tuple[DepositEvent, Receipt]:
        receipt = self._send(self.contract.functions.deposit(token, amount), sender)
        (event,) = self.contract.events.Deposit().process_receipt(receipt, errors=DISCARD)
        args = event["args"]
        deposit = DepositEvent(
            seq=args["seq"], trader=args["trader"], strategy=bytes(args["strategy"]), token=args["token"],
            amount=args["amount"], depositor=args["depositor"], block_number=receipt.blockNumber,
            tx_hash=receipt.transactionHash.hex(),
        )
        return deposit, self._receipt(receipt)

    def submit_checkpoint(
        self, sender: str, message: om.Checkpoint, operator_set: om.OperatorSet, quorum: om.QuorumSignatures,
        suffix: tuple[bytes, ...] = (),
    ) -> Receipt:
        """`suffix`: the inbox leaves after the message's cursor up to the head (none when it covers the head)."""
        name, args = om.checkpoint_call(message, operator_set, quorum, suffix)
        call = getattr(self.contract.functions, name)(*args)
        return self._receipt(self._send(call, sender))

    def claim(self, sender: str, trader: str, token: str, cumulative: int, epoch: int, proof: InclusionProof) -> Receipt:
        call = self.contract.functions.claim(trader, token, cumulative, epoch, list(proof.siblings))
        return self._receipt(self._send(call, sender))

    def escape(
        self, sender: str, trader: str, token: str,
        balance: int, deposited: int, balance_proof: InclusionProof | NonInclusionProof | None,
        cumulative: int, withdrawal_proof: InclusionProof | None,
    ) -> Receipt:
        """`balance`/`deposited`: the BALANCE leaf of the last checkpoint, with its inclusion proof; (0, 0) with a
        non-inclusion proof when the pair has no leaf, or with no proof at all when nothing was ever checkpointed."""
        zero = bytes(32)
        other_key = other_value_hash = zero
        if isinstance(balance_proof, NonInclusionProof):
            other_key, other_value_hash = balance_proof.other_key or zero, balance_proof.other_value_hash or zero
        call = self.contract.functions.escape(
            trader, token,
            balance, deposited, list(balance_proof.siblings) if balance_proof else [],
            cumulative, list(withdrawal_proof.siblings) if withdrawal_proof else [],
            other_key, other_value_hash,
        )
        return self._receipt(self._send(call, sender))

    def _send(self, call, sender: str):
        try:
            tx_hash = call.transact({"from": sender})
        except Exception as exc:  # web3 raises ContractLogicError and friends with the revert reason
            raise ExchangeCallError(str(exc)) from exc
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt.status != 1:
            raise ExchangeCallError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    @staticmethod
    def _receipt(receipt) -> Receipt:
        return Receipt(
            tx_hash=receipt.transactionHash.hex(), block_number=receipt.blockNumber,
            gas_used=receipt.gasUsed, logs=tuple(receipt.logs),
        )
