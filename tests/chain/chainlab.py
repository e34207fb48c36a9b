"""A small world for chain-side tests: a deployed exchange on a chain, traders with tokens, an engine standing in
for the replicated state machine, and N operators each with its own RPC, verifier and checkpointer.

The leader's path is exactly the node's: watcher -> `ConfirmedBlock.command()` -> engine.apply -> ChainHooks on
every operator; epochs are frozen with AdvanceEpoch and become checkpoints through the same hooks.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from eth_account import Account
from web3 import Web3

from ddx_offchain.chain.checkpointer import Checkpointer, CheckpointerConfig
from ddx_offchain.chain.core.follower import FollowerConfig
from ddx_offchain.chain.core.prices import Observation
from ddx_offchain.chain.operator_chain import ChainHooks
from ddx_offchain.chain.price_sources import PriceSourceError
from ddx_offchain.chain.rpc import ChainRpc, Web3ChainRpc
from ddx_offchain.chain.signatures import SignatureBoard
from ddx_offchain.chain.verifier import BlockVerifier
from ddx_offchain.chain.watcher import ChainWatcher, ResumePoint
from ddx_offchain.deployment.artifacts import compile_contract
from ddx_offchain.deployment.deploy import DeployConfig, deploy_exchange
from ddx_offchain.deployment.embedded import Web3Deployer
from ddx_offchain.engine import Engine, GenesisConfig
from ddx_offchain.engine.commands import AdvanceEpoch
from ddx_offchain.node.wallclock import wall_clock_ms
from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.hashing import keccak256


def operator_keys(count: int) -> list[bytes]:
    keys = [keccak256(f"ddx chain test operator {i}".encode()) for i in range(count)]
    return sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))


@dataclass
class Operator:
    key: bytes
    rpc: ChainRpc
    verifier: BlockVerifier
    checkpointer: Checkpointer
    hooks: ChainHooks
    up: bool = True

    @property
    def address(self) -> str:
        return Account.from_key(self.key).address


@dataclass
class ChainLab:
    w3: Web3  # sync, with unlocked accounts: deploys and plays the traders
    aw3_factory: object  # () -> AsyncWeb3 onto the same chain
    exchange: object
    token: object
    deployment_block: int
    keys: list[bytes]
    operator_set: om.OperatorSet
    domain: om.Domain
    engine: Engine = None  # type: ignore[assignment]
    operators: list[Operator] = field(default_factory=list)
    board: SignatureBoard = field(default_factory=SignatureBoard)
    handed: list = field(default_factory=list)
    results: list = field(default_factory=list)  # engine updates of each handed block
    rpcs: list = field(default_factory=list)

    # ---- chain actions ----------------------------------------------------------------------------------

    def deposit(self, trader_index: int, amount: int) -> dict:
        trader = self.w3.eth.accounts[1 + trader_index]
        self.token.functions.mint(trader, amount).transact({"from": self.w3.eth.accounts[0]})
        self.token.functions.approve(self.exchange.address, amount).transact({"from": trader})
        tx = self.exchange.functions.deposit(self.token.address, amount).transact({"from": trader})
        return self.w3.eth.wait_for_transaction_receipt(tx)

    def abi(self) -> list:
        return compile_contract("Exchange").abi

    def rpc(self) -> Web3ChainRpc:
        rpc = Web3ChainRpc(self.aw3_factory(), self.exchange.address, self.abi())
        self.rpcs.append(rpc)
        return rpc

    async def close(self) -> None:
        for rpc in self.rpcs:
            await rpc.close()

    # ---- the off-chain side -----------------------------------------------------------------------------

    def start_engine(self) -> None:
        self.engine = Engine(GenesisConfig(tokens=(bytes.fromhex(self.token.address[2:]),)))

    def add_operators(self, config: CheckpointerConfig, rpcs: list[ChainRpc] | None = None, confirmations: int = 0) -> None:
        for i, key in enumerate(self.keys):
            rpc = rpcs[i] if rpcs else self.rpc()
            verifier = BlockVerifier(rpc, confirmations=confirmations)
            checkpointer = Checkpointer(
                rpc=rpc,
                domain=self.domain,
                operator_key=key,
                operator_set=self.operator_set,
                verifier=verifier,
                exchange=self.board,
                config=config,
                clock=self.clock,
            )
            self.operators.append(Operator(key, rpc, verifier, checkpointer, ChainHooks(verifier, checkpointer)))

    now: float = 0.0

    def clock(self) -> float:
        return self.now

    def watcher(self, rpc: ChainRpc, config: FollowerConfig) -> ChainWatcher:
        async def handoff(block) -> None:
            self.sequence(block.command())
            self.handed.append(block)

        return ChainWatcher(rpc, config, resume=self.resume_point, handoff=handoff)

    def resume_point(self) -> ResumePoint:
        e = self.engine
        return ResumePoint.from_engine(e.block_number, e.block_hash, e.inbox_cursor(), self.deployment_block)

    def sequence(self, command) -> list:
        """What every node does with a committed operator command: engine.apply, then the chain hooks."""
        updates = self.engine.apply(command)
        self.results.append(updates)
        for op in self.operators:
            op.hooks.applied(
                command, updates, (self.engine.block_number, self.engine.block_hash), self.engine.inbox_cursor()
            )
        return updates

    _ids = itertools.count(1)

    def freeze_epoch(self) -> int:
        epoch = self.engine.epoch + 1
        self.sequence(AdvanceEpoch(next(self._ids).to_bytes(32, "big"), epoch))
        return epoch

    async def tick_all(self, seconds: float = 1.0) -> None:
        self.now += seconds
        for op in self.operators:
            if op.up:
                await op.checkpointer.tick()

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])


def embedded_lab(operator_count: int = 4, threshold: int | None = None, supermajority: bool = True) -> ChainLab:
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider

    from ddx_offchain.chain.rpc import embedded_async_web3
    from ddx_offchain.deployment.embedded import BLOCK_GAS_LIMIT

    params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": BLOCK_GAS_LIMIT})
    w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend(genesis_parameters=params))))
    return _deploy(w3, lambda: embedded_async_web3(w3), operator_count, threshold, supermajority)


def http_lab(url: str, operator_count: int = 4) -> ChainLab:
    from ddx_offchain.chain.rpc import http_web3

    w3 = Web3(Web3.HTTPProvider(url))
    return _deploy(w3, lambda: http_web3(url), operator_count)


def _deploy(w3: Web3, aw3_factory, operator_count: int, threshold: int | None = None, supermajority: bool = True) -> ChainLab:
    keys = operator_keys(operator_count)
    members = tuple(Account.from_key(k).address for k in keys)
    config = DeployConfig.local_default()
    config = DeployConfig(
        operators=members,
        threshold=om.smallest_supermajority(len(members)) if threshold is None else threshold,
        collateral=config.collateral,
        escape_delay=config.escape_delay,
        governance_delay=config.governance_delay,
        supermajority_required=supermajority,
    )
    deployer = Web3Deployer(w3, network="test")
    manifest = deploy_exchange(deployer, config, local=True, log=lambda _: None)
    for member in members:  # operators pay gas when they relay
        w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": member, "value": 10**20})
    exchange = deployer.contract("Exchange", manifest.exchange)
    token = deployer.contract("MockERC20", manifest.mock_token)
    operator_set = om.OperatorSet(manifest.operator_set_id, manifest.threshold, members, manifest.supermajority_required)
    domain = om.Domain(w3.eth.chain_id, manifest.exchange)
    lab = ChainLab(w3, aw3_factory, exchange, token, manifest.deployment_block, keys, operator_set, domain)
    lab.start_engine()
    return lab


class FakePriceSource:
    """A price source the test sets by hand (`price = None`: down), stamped with `clock` (default: the wall clock)."""

    def __init__(self, name: str, price: int | None, clock=wall_clock_ms) -> None:
        self.name, self.price, self.clock = name, price, clock

    async def read(self) -> Observation:
        if self.price is None:
            raise PriceSourceError(f"{self.name}: down")
        return Observation(self.name, self.price, self.clock())
