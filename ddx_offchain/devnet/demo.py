"""`ddx devnet --demo`: deposit -> state tree -> quorum checkpoint -> claim, on the embedded py-evm chain.

Each step is a function of its own so the full devnet (operators, Raft, API) can reuse them; `run_demo` only
strings them together and prints what happened. The "engine" here is a hand-written ledger update (the trader
withdraws part of its deposit); the real engine replaces it in the full devnet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eth_account import Account

from ..chain.exchange_client import DepositEvent, ExchangeClient, Receipt
from ..deployment.deploy import DeployConfig, deploy_and_record, dev_operator_keys
from ..deployment.embedded import Web3Deployer, embedded_web3
from ..deployment.manifest import Manifest, load_abi
from ..protocol import items
from ..protocol import operator_messages as om
from ..protocol.proof import InclusionProof
from ..tree import StateTree

Echo = Callable[[str], None]


@dataclass
class Devnet:
    """An embedded chain with the exchange deployed, and the devnet operators' keys."""

    client: ExchangeClient
    manifest: Manifest
    manifest_path: Path
    operator_keys: list[str]
    relayer: str

    @property
    def w3(self):
        return self.client.w3

    @property
    def token_address(self) -> str:
        token = self.manifest.mock_token
        if token is None:
            raise RuntimeError("the devnet deploys a mock collateral token; this manifest has none")
        return token


def start_devnet(deployments_root: Path | None = None, echo: Echo = print) -> Devnet:
    """Start the embedded chain and deploy exactly as `ape run deploy` does on a local network."""
    w3 = embedded_web3()
    deployer = Web3Deployer(w3)
    manifest, written = deploy_and_record(deployer, DeployConfig.local_default(), local=True, root=deployments_root, log=echo)
    client = ExchangeClient(
        w3, manifest, load_abi(written.path, manifest, "Exchange"), load_abi(written.path, manifest, "MockERC20")
    )
    return Devnet(client, manifest, written.path, dev_operator_keys(), relayer=w3.eth.accounts[0])


def fund_trader(devnet: Devnet, trader: str, amount: int) -> None:
    """Mint mock collateral to `trader` and approve the exchange (local networks only)."""
    token = devnet.client.token(devnet.token_address)
    token.functions.mint(trader, amount).transact({"from": trader})
    token.functions.approve(devnet.manifest.exchange, 2**256 - 1).transact({"from": trader})


def deposit(devnet: Devnet, trader: str, amount: int) -> tuple[DepositEvent, Receipt]:
    return devnet.client.deposit(trader, devnet.token_address, amount)


def credit_and_withdraw(tree: StateTree, trader: str, token: str, deposited: int, withdrawn: int) -> None:
    """What the engine does for this walk-through: credit the deposit, then move `withdrawn` of it to the
    trader's cumulative withdrawable amount. Leaves: BALANCE = (deposited - withdrawn, credited deposits = deposited),
    WITHDRAWAL = withdrawn."""
    tree.put(items.balance_key(trader, token), items.balance_value(trader, token, deposited - withdrawn, deposited))
    tree.put(items.withdrawal_key(trader, token), items.withdrawal_value(trader, token, withdrawn))


def checkpoint(devnet: Devnet, epoch: int, state_root: bytes, signing_keys: list[str]) -> tuple[om.Checkpoint, om.QuorumSignatures, Receipt]:
    """Each operator signs the epoch's root anchored to the latest block; a relayer submits the quorum."""
    anchor = devnet.w3.eth.get_block("latest")
    operator_set = devnet.client.operator_set()
    # this walk-through's "engine" took every inbox entry so far: the checkpoint covers the contract's head
    message = om.Checkpoint(operator_set.id, epoch, state_root, anchor.number, bytes(anchor.hash), devnet.client.inbox_head())
    quorum = om.sign_quorum(message, devnet.client.domain(), operator_set, signing_keys)
    return message, quorum, devnet.client.submit_checkpoint(devnet.relayer, message, operator_set, quorum)


def claim(devnet: Devnet, trader: str, cumulative: int, epoch: int, proof: InclusionProof) -> Receipt:
    """Anyone (here the relayer) submits the trader's withdrawal proof; the tokens go to the trader."""
    return devnet.client.claim(devnet.relayer, trader, devnet.token_address, cumulative, epoch, proof)


def run_demo(echo: Echo = print, deployments_root: Path | None = None, deposit_amount: int = 1_000_000_000, withdraw_amount: int = 400_000_000) -> dict:
    """The whole walk-through; returns the figures it printed (tests check them)."""
    echo("== 1. deploy on the embedded py-evm chain")
    devnet = start_devnet(deployments_root, echo)
    operator_set = devnet.client.operator_set()
    echo(f"   operators (threshold {operator_set.threshold} of {len(operator_set.members)}): {', '.join(operator_set.members)}")

    trader = devnet.w3.eth.accounts[1]
    token = devnet.client.token(devnet.token_address)
    decimals = devnet.manifest.collateral[0].decimals
    units = 10**decimals
    echo(f"== 2. fund trader {trader} with {deposit_amount / units:,.2f} USDX (mock)")
    fund_trader(devnet, trader, deposit_amount)

    echo("== 3. deposit")
    event, receipt = deposit(devnet, trader, deposit_amount)
    echo(f"   Deposit seq={event.seq} trader={event.trader} strategy={event.strategy.rstrip(bytes(1)).decode()!r} "
         f"amount={event.amount} block={event.block_number} gas={receipt.gas_used}")

    echo("== 4. engine: credit the deposit, trader withdraws part of it; build the state tree")
    tree = StateTree()
    credit_and_withdraw(tree, trader, devnet.token_address, event.amount, withdraw_amount)
    root = tree.root()
    echo(f"   BALANCE={event.amount - withdraw_amount} WITHDRAWAL(cumulative)={withdraw_amount} root=0x{root.hex()}")

    echo("== 5. checkpoint signed by a quorum of operators, relayed by anyone")
    signing_keys = devnet.operator_keys[: operator_set.threshold]
    message, quorum, receipt = checkpoint(devnet, 1, root, signing_keys)
    signers = [Account.from_key(k).address for k in signing_keys]
    echo(f"   epoch={message.epoch} anchored at block {message.l1_block_number}; signers {', '.join(signers)}")
    echo(f"   recorded in block {receipt.block_number}, gas={receipt.gas_used}")
    epoch, recorded_root, _ = devnet.client.latest_checkpoint()
    if (epoch, recorded_root) != (1, root):
        raise RuntimeError(f"the exchange recorded epoch {epoch} root 0x{recorded_root.hex()}, not epoch 1 0x{root.hex()}")

    echo("== 6. claim with the Merkle proof of the WITHDRAWAL leaf")
    proof = tree.prove(items.withdrawal_key(trader, devnet.token_address))
    before = token.functions.balanceOf(trader).call()
    receipt = claim(devnet, trader, withdraw_amount, epoch, proof)
    after = token.functions.balanceOf(trader).call()
    echo(f"   proof depth={len(proof.siblings)}; claim gas={receipt.gas_used}")
    echo(f"   trader received {after - before} (claimed so far {devnet.client.claimed(trader, devnet.token_address)})")
    if after - before != withdraw_amount:
        raise RuntimeError(f"claim paid {after - before}, expected {withdraw_amount}")
    echo(f"== done: manifest at {devnet.manifest_path}")
    return {"exchange": devnet.manifest.exchange, "deposit_seq": event.seq, "epoch": epoch, "received": after - before}
