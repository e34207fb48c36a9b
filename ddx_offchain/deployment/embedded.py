"""The embedded py-evm chain (eth-tester) and a web3 deployer for it.

Used by the devnet demo and the gas benchmark: no node process, no network. Receipts report whole-transaction
gas (intrinsic 21,000 + calldata + execution), exactly as on Ethereum (Prague rules).
"""

from __future__ import annotations

from web3 import EthereumTesterProvider, Web3

from .artifacts import compile_contract

EMBEDDED_NETWORK = "local"  # a local py-evm chain, like ape's ethereum:local:test
BLOCK_GAS_LIMIT = 60_000_000


def embedded_web3() -> Web3:
    """A fresh in-process chain with funded, unlocked accounts (eth-tester's defaults)."""
    from eth_tester import EthereumTester, PyEVMBackend

    params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": BLOCK_GAS_LIMIT})
    tester = EthereumTester(PyEVMBackend(genesis_parameters=params))
    return Web3(EthereumTesterProvider(tester))


class Web3Deployer:
    """ChainDeployer over web3.py, sending from an account the node has unlocked (eth-tester, a dev node)."""

    def __init__(self, w3: Web3, sender: str | None = None, network: str = EMBEDDED_NETWORK):
        self.w3 = w3
        self.sender = sender or w3.eth.accounts[0]
        self.network = network

    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    def deployer_address(self) -> str:
        return self.sender

    def abi(self, name: str) -> list:
        return compile_contract(name).abi

    def deploy(self, name: str, args: list) -> tuple[str, int]:
        artifact = compile_contract(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = factory.constructor(*args).transact({"from": self.sender})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt.status != 1:
            raise RuntimeError(f"deploying {name} failed (tx {tx.hex()})")
        return receipt.contractAddress, receipt.blockNumber

    def contract(self, name: str, address: str):
        return self.w3.eth.contract(address=address, abi=compile_contract(name).abi)
