"""The full devnet: a chain (embedded py-evm by default, or any JSON-RPC node with `rpc_url`), the exchange deployed
through the deploy script's code path, a funded mock collateral token, and N operators — each a `OperatorProcess`
(Raft over loopback TCP with TLS, engine, history, API) with its `OperatorChain` (watcher and epoch scheduler
while leader, verifier and checkpointer always) — in one process.

The operators share the process so they can share the in-process chain; with `rpc_url` each still talks to the
node through its own RPC client. Their checkpoint signatures travel over a shared in-process board.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from eth_account import Account
from web3 import Web3

from ..chain.operator_chain import ChainSettings, OperatorChain, verifier_ledger_path, with_overrides
from ..chain.price_feed import PriceFeed
from ..chain.rpc import Web3ChainRpc, embedded_async_web3, http_web3
from ..chain.signatures import SignatureBoard
from ..deployment.artifacts import shipped_abi
from ..deployment.deploy import CollateralSpec, DeployConfig, deploy_and_record
from ..deployment.embedded import Web3Deployer, embedded_web3
from ..deployment.genesis import example_genesis
from ..protocol import operator_messages as om

Echo = Callable[[str], None]
log = logging.getLogger("ddx.devnet")
STOP_TIMEOUT_S = 30.0
TOKEN_DECIMALS = 6
DOLLAR = 10**TOKEN_DECIMALS


@dataclass
class DevnetCluster:
    w3: Web3
    exchange: object  # web3 contract (sync), for traders' deposits and claims
    token: object
    manifest: object
    domain: om.Domain
    operator_keys: list[bytes]
    api_urls: list[str]
    root: Path
    nodes: list = field(default_factory=list)  # OperatorProcess
    chains: list[OperatorChain] = field(default_factory=list)
    rpcs: list[Web3ChainRpc] = field(default_factory=list)
    board: SignatureBoard = field(default_factory=SignatureBoard)
    stopped: set[int] = field(default_factory=set)
    make_async: object = None  # () -> AsyncWeb3 onto the devnet's chain
    replicas: list = field(default_factory=list)  # ReplicaProcess

    @property
    def operator_set(self) -> om.OperatorSet:
        return self.chains[0].checkpointer.progress.operator_set

    def leader(self):
        for i, running in enumerate(self.nodes):
            if i not in self.stopped and running.node.sequencer.is_leader():
                return running
        return None

    async def wait_for_leader(self, timeout_s: float = 20.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            await asyncio.sleep(0.05)
        raise TimeoutError("no Raft leader elected")

    def status_line(self) -> str:
        leader = self.leader()
        engine = leader.node.engine.engine if leader else self.nodes[0].node.engine.engine
        checkpoint = self.chains[0].status()
        recorded = checkpoint["lastRecordedEpoch"]
        return (
            f"leader op{leader.settings.node_id if leader else '-'} | request index {leader.node.machine.next_request_index - 1 if leader else '-'}"
            f" | epoch {engine.epoch} | L1 block {engine.block_number} | deposits {engine.deposit_seq}"
            f" | checkpoint: {checkpoint['state']}, last recorded epoch {recorded if recorded is not None else '-'}"
        )

    def fund(self, trader: str, amount: int, eth: int = 10**18) -> None:
        """Mint mock collateral and give gas money to `trader`."""
        fund_address(self.token, trader, amount, eth)

    def send_as(self, key: bytes, call) -> dict:
        """Sign and send a contract call from a trader's own key (not an account the node unlocked)."""
        sender = Account.from_key(key).address
        tx = call.build_transaction({"from": sender, "nonce": self.w3.eth.get_transaction_count(sender, "pending")})
        receipt = self._wait(self.w3.eth.send_raw_transaction(Account.sign_transaction(tx, key).raw_transaction))
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction from {sender} reverted")
        return receipt

    def deposit(self, key: bytes, amount: int) -> dict:
        """approve + deposit `amount` of the mock token to the trader's "main" strategy."""
        self.send_as(key, self.token.functions.approve(self.exchange.address, amount))
        return self.send_as(key, self.exchange.functions.deposit(self.token.address, amount))

    def _wait(self, tx) -> dict:
        return self.w3.eth.wait_for_transaction_receipt(tx)

    async def stop_operator(self, index: int) -> None:
        """Stop one operator (its chain side, then its node); a part that does not stop in time is left behind
        with a warning rather than hanging the devnet's shutdown."""
        if index in self.stopped:
            return
        self.stopped.add(index)
        try:  # the node stops its chain side first (OperatorProcess.stop)
            await asyncio.wait_for(self.nodes[index].stop(), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("operator %d did not stop within %.0f s", index + 1, STOP_TIMEOUT_S)

    async def start_replica(self, sources: list[str] | None = None, snapshot_every: int = 10_000):
        """A public replica (`ddx replica`) following the operators' APIs, with its own RPC and read API."""
        from ..daemon.cluster_files import free_ports
        from ..daemon.replica import ReplicaProcess, ReplicaSettings
        from ..deployment.genesis import parse_genesis
        from ..protocol.eip712 import Domain as RequestDomain

        index = len(self.replicas) + 1
        settings = ReplicaSettings(
            domain=RequestDomain.of(self.manifest.chain_id, self.manifest.exchange),
            genesis=parse_genesis(example_genesis(self.manifest.mock_token)),
            data_dir=self.root / f"replica{index}",
            sources=tuple(sources or self.api_urls),
            listen=("127.0.0.1", free_ports(1)[0]),
            snapshot_every=snapshot_every,
        )
        rpc = Web3ChainRpc(self.make_async(), self.manifest.exchange, shipped_abi("Exchange"))
        running = ReplicaProcess(settings, rpc)
        await running.start()
        self.replicas.append(running)
        return running

    async def stop(self) -> None:
        for i in range(len(self.nodes)):
            await self.stop_operator(i)
        for replica in self.replicas:
            try:
                await asyncio.wait_for(replica.stop(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("a replica did not stop within %.0f s", STOP_TIMEOUT_S)
        self.replicas = []
        for rpc in self.rpcs:
            await rpc.close()


def ape_deploy(rpc_url: str, operators: tuple[str, ...], deployments: Path, echo: Echo):
    """`ape run deploy --network ethereum:local:node` against `rpc_url` (a dev node with ape's local chain id, 1337,
    e.g. `anvil --chain-id 1337`), for `operators`; returns the manifest it wrote."""
    import json
    import subprocess
    import sys

    from ..deployment.artifacts import REPO_ROOT
    from ..deployment.manifest import load_manifest

    env = {k: v for k, v in os.environ.items() if not k.startswith("DDX_")}
    env.update(
        DDX_OPERATORS=",".join(operators),
        DDX_DEPLOYMENTS_DIR=str(deployments),
        APE_NODE_ETHEREUM=json.dumps({"local": {"uri": rpc_url}}),
    )
    ape = Path(sys.executable).parent / "ape"
    done = subprocess.run(
        [str(ape), "run", "deploy", "--network", "ethereum:local:node"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ape run deploy failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")
    for line in done.stdout.splitlines():
        echo(line)
    (folder,) = [p for p in deployments.iterdir() if p.is_dir()]
    return load_manifest(folder)


def fund_address(token, address: str, amount: int, eth: int) -> None:
    """The devnet's faucet: `eth` wei and `amount` of the mock collateral `token` (a web3 contract) to `address`,
    paid by the chain's first unlocked account."""
    w3 = token.w3
    sender = w3.eth.accounts[0]
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": sender, "to": address, "value": eth}))
    w3.eth.wait_for_transaction_receipt(token.functions.mint(address, amount).transact({"from": sender}))


async def start_cluster(
    root: Path,
    *,
    operators: int = 3,
    rpc_url: str | None = None,
    epoch_interval_s: float = 5.0,
    confirmations: int | None = None,
    deploy_with_ape: bool = False,
    echo: Echo = print,
    price_feeds: Callable[[int, DevnetCluster], PriceFeed | None] | None = None,
    before_start: Callable[[list[Path]], Awaitable[None]] | None = None,
) -> DevnetCluster:
    """`price_feeds(i, cluster)`: operator i's index-price feed (its own sources: it sequences prices while it leads and
    checks the sequenced ones before signing); None leaves prices to operator commands (the demo's script).
    `before_start(configs)`: runs once the operators' config files are written, before any is read (a test puts
    proxies between the operators there)."""
    from ..daemon.cluster_files import write_cluster
    from ..daemon.config import load_config
    from ..daemon.keystore import write_keystore
    from ..daemon.run import OperatorProcess

    root.mkdir(parents=True, exist_ok=True)
    if rpc_url is None:
        w3 = embedded_web3()
        make_async = lambda: embedded_async_web3(w3)  # noqa: E731
        network = "embedded"
    else:
        w3 = Web3(Web3.HTTPProvider(rpc_url))
        make_async = lambda: http_web3(rpc_url)  # noqa: E731
        network = "rpc"
    keys = sorted((os.urandom(32) for _ in range(operators)), key=lambda k: int(Account.from_key(k).address, 16))
    members = tuple(Account.from_key(k).address for k in keys)
    config = DeployConfig(
        operators=members,
        threshold=om.smallest_supermajority(operators),
        collateral=(CollateralSpec(token=None, capacity=10**15, period=86400),),
    )
    if deploy_with_ape:
        if rpc_url is None:
            raise ValueError("deploy_with_ape needs rpc_url (ape deploys to a node, not to the in-process chain)")
        manifest = ape_deploy(rpc_url, members, root / "deployments", echo)
    else:
        manifest, _ = deploy_and_record(Web3Deployer(w3, network=network), config, local=True, root=root / "deployments", log=echo)
    for member in members:  # relayers pay gas
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": member, "value": 10**20}))
    exchange = w3.eth.contract(address=manifest.exchange, abi=shipped_abi("Exchange"))
    token = w3.eth.contract(address=manifest.mock_token, abi=shipped_abi("MockERC20"))
    domain = om.Domain(manifest.chain_id, manifest.exchange)
    operator_set = om.OperatorSet(manifest.operator_set_id, manifest.threshold, members, manifest.supermajority_required)

    from ..protocol.eip712 import Domain as RequestDomain

    files = write_cluster(root / "operators", operators, RequestDomain.of(manifest.chain_id, manifest.exchange), example_genesis(manifest.mock_token))
    for i, key in enumerate(keys, start=1):  # the keystores hold the keys the contract knows
        write_keystore(files.root / f"op{i}.keystore.json", key, files.password, iterations=2048)

    cluster = DevnetCluster(w3, exchange, token, manifest, domain, keys, files.api_urls, root, make_async=make_async)
    if before_start is not None:
        await before_start(files.configs)
    settings = with_overrides(ChainSettings.embedded(manifest.deployment_block, epoch_interval_s), confirmations=confirmations)
    for i, (path, key) in enumerate(zip(files.configs, keys)):
        running = OperatorProcess(load_config(path), key)
        rpc = Web3ChainRpc(make_async(), manifest.exchange, shipped_abi("Exchange"))
        adapter = running.node.engine
        chain = OperatorChain(
            settings,
            rpc=rpc,
            service=running.node.service,
            engine=lambda adapter=adapter: adapter.engine,
            operator_key=key,
            domain=domain,
            operator_set=operator_set,
            exchange=cluster.board,
            prices=None if price_feeds is None else price_feeds(i, cluster),
            ledger_path=verifier_ledger_path(running.settings.data_dir),
        )
        running.attach_chain(chain)  # the same wiring `ddx node` does from its [chain] settings
        cluster.nodes.append(running)
        cluster.chains.append(chain)
        cluster.rpcs.append(rpc)
    for running in cluster.nodes:
        await running.start()  # starts its chain side after its Raft and API
    await cluster.wait_for_leader()
    return cluster
