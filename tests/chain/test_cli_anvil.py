"""The devnet against anvil (`--rpc`, blocks every second, 2 confirmations), the exchange deployed by
`ape run deploy --network ethereum:local:node` against that node, and the trader's commands against it:
`ddx withdraw request`, `ddx withdraw claim`, `ddx withdraw status`, `ddx audit` — over HTTP only, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from anvil_node import Anvil
from eth_account import Account
from typer.testing import CliRunner

from ddx_offchain.cli import app
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.protocol.hashing import keccak256

PASSWORD = "trader password"


class ClusterThread:
    """The devnet's event loop in a thread, so the CLI (which runs its own loop) can be driven from the test."""

    def __init__(self, root, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cluster = self.call(
            start_cluster(root, operators=3, rpc_url=url, epoch_interval_s=2.0, confirmations=2, deploy_with_ape=True, echo=lambda _: None)
        )

    def call(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.call(self.cluster.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def test_trader_commands_against_a_devnet_on_anvil(tmp_path, monkeypatch):
    anvil = Anvil("--block-time", "1", "--chain-id", "1337")  # ape's local network id
    devnet = None
    try:
        devnet = ClusterThread(tmp_path / "devnet", anvil.url)
        cluster = devnet.cluster
        key = keccak256(b"cli trader")
        trader = Account.from_key(key).address
        keystore = tmp_path / "trader.json"
        keystore.write_text(json.dumps(Account.encrypt(key, PASSWORD, kdf="pbkdf2", iterations=2048)))
        monkeypatch.setenv("DDX_KEYSTORE_PASSWORD", PASSWORD)
        cluster.fund(trader, 50 * DOLLAR)
        cluster.deposit(key, 40 * DOLLAR)
        manifest = next((tmp_path / "devnet" / "deployments").iterdir()) / "latest.json"
        assert cluster.manifest.network == "local"  # written by the ape deploy script
        common = ["--manifest", str(manifest), "--keystore", str(keystore)]
        runner = CliRunner()

        deadline = time.monotonic() + 60
        while True:  # the deposit needs 2 confirmations before the leader sequences it
            engine = cluster.nodes[0].node.engine.engine
            if engine.deposit_seq == 1:
                break
            assert time.monotonic() < deadline, "deposit never credited"
            time.sleep(0.2)

        done = runner.invoke(app, ["withdraw", "request", "--amount", str(15 * DOLLAR), "--api", cluster.api_urls[0], *common])
        assert done.exit_code == 0, done.output
        assert "withdraw intent sequenced" in done.output

        done = runner.invoke(app, ["withdraw", "claim", "--rpc", anvil.url, "--api", cluster.api_urls[1], "--wait", "90", *common])
        assert done.exit_code == 0, done.output
        assert f"paid {15 * DOLLAR} to {trader}" in done.output
        assert cluster.token.functions.balanceOf(trader).call() == 25 * DOLLAR

        done = runner.invoke(app, ["withdraw", "claim", "--rpc", anvil.url, "--api", cluster.api_urls[1], *common])
        assert done.exit_code == 0 and "nothing to claim" in done.output

        done = runner.invoke(app, ["withdraw", "status", "--rpc", anvil.url, "--api", cluster.api_urls[2], *common])
        assert done.exit_code == 0, done.output
        assert f"claimed:       {15 * DOLLAR}" in done.output and "claimable now: 0" in done.output

        genesis = tmp_path / "devnet" / "operators" / "genesis.json"
        done = runner.invoke(app, ["audit", "--rpc", anvil.url, "--manifest", str(manifest), "--genesis", str(genesis),
                                   "--log-url", cluster.api_urls[2]])
        assert done.exit_code == 0, done.output
        assert "OK:" in done.output and " 0 differ" in done.output

        done = runner.invoke(app, ["withdraw", "request", "--amount", "0", "--api", cluster.api_urls[0], *common])
        assert done.exit_code == 1 and "positive" in done.output

        # the escape hatch: save the last checkpoint's proofs, the operators stop, the escape delay passes
        devnet.call(cluster.stop_operator(0))  # no new epoch can be checkpointed with 2 of 3
        # An epoch whose three signatures were collected before the stop can still be relayed by the fallback
        # relayer (after its turn's timeout): wait until the recorded epoch has been stable for longer than that.
        epoch, stable_since = cluster.exchange.functions.latest_epoch().call(), time.monotonic()
        while time.monotonic() - stable_since < 6.0:
            time.sleep(0.5)
            now_epoch = cluster.exchange.functions.latest_epoch().call()
            if now_epoch != epoch:
                epoch, stable_since = now_epoch, time.monotonic()
        import urllib.request

        for kind in ("balance", "withdrawal"):  # the documents a wallet saves from the API while operators are up
            url = f"{cluster.api_urls[1]}/v1/proofs/{kind}/{trader}/{cluster.token.address}?epoch={epoch}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                (tmp_path / f"{kind}.json").write_bytes(resp.read())
        saved = json.loads((tmp_path / "balance.json").read_text())
        assert saved["included"] and int(saved["amount"]) == 25 * DOLLAR and saved["epoch"] == str(epoch)
        fetched = ["escape", "--rpc", anvil.url, "--api", cluster.api_urls[1], *common]
        done = runner.invoke(app, fetched)  # proofs fetched from the API for the contract's last epoch
        assert done.exit_code == 1 and "cannot be frozen yet" in done.output
        escape = ["escape", "--rpc", anvil.url, "--balance-proof", str(tmp_path / "balance.json"),
                  "--withdrawal-proof", str(tmp_path / "withdrawal.json"), *common]
        done = runner.invoke(app, escape)
        assert done.exit_code == 1 and "cannot be frozen yet" in done.output
        devnet.stop()
        devnet = None
        assert cluster.exchange.functions.latest_epoch().call() == epoch  # nothing recorded since the proofs
        due = cluster.exchange.functions.last_checkpoint_at().call() + cluster.exchange.functions.escape_delay().call()
        now = cluster.w3.eth.get_block("latest")["timestamp"]
        cluster.w3.provider.make_request("evm_increaseTime", [due - now + 1])
        cluster.w3.provider.make_request("evm_mine", [])
        done = runner.invoke(app, escape)
        assert done.exit_code == 0, done.output
        assert f"escaped: paid {25 * DOLLAR}" in done.output
        assert cluster.token.functions.balanceOf(trader).call() == 50 * DOLLAR  # 10 in the wallet + 15 claimed + 25
        assert cluster.exchange.functions.frozen().call()
    finally:
        if devnet is not None:
            devnet.stop()
        anvil.stop()


def test_escape_before_any_checkpoint_needs_no_proof(tmp_path, monkeypatch):
    """`ddx escape` when the operators never recorded a checkpoint: (0, 0, no siblings, zeros) against the empty
    tree's root, and the on-chain deposit comes back."""
    from web3 import Web3

    from ddx_offchain.deployment.artifacts import compile_contract
    from ddx_offchain.deployment.deploy import DeployConfig, deploy_and_record
    from ddx_offchain.deployment.embedded import Web3Deployer

    anvil = Anvil()
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        manifest, written = deploy_and_record(
            Web3Deployer(w3, network="anvil"), DeployConfig.local_default(), local=True, root=tmp_path / "deployments", log=lambda _: None
        )
        exchange = w3.eth.contract(address=manifest.exchange, abi=compile_contract("Exchange").abi)
        token = w3.eth.contract(address=manifest.mock_token, abi=compile_contract("MockERC20").abi)
        key = keccak256(b"escaping before any checkpoint")
        trader = Account.from_key(key).address
        funder = w3.eth.accounts[0]
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": funder, "to": trader, "value": 10**18}))
        w3.eth.wait_for_transaction_receipt(token.functions.mint(trader, 7 * DOLLAR).transact({"from": funder}))
        for call in (token.functions.approve(exchange.address, 7 * DOLLAR), exchange.functions.deposit(token.address, 7 * DOLLAR)):
            tx = call.build_transaction({"from": trader, "nonce": w3.eth.get_transaction_count(trader, "pending")})
            w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(Account.sign_transaction(tx, key).raw_transaction))
        keystore = tmp_path / "trader.json"
        keystore.write_text(json.dumps(Account.encrypt(key, PASSWORD, kdf="pbkdf2", iterations=2048)))
        monkeypatch.setenv("DDX_KEYSTORE_PASSWORD", PASSWORD)
        escape = ["escape", "--rpc", anvil.url, "--manifest", str(written.path), "--keystore", str(keystore)]
        runner = CliRunner()
        done = runner.invoke(app, escape)
        assert done.exit_code == 1 and "cannot be frozen yet" in done.output
        assert exchange.functions.latest_epoch().call() == 0
        due = exchange.functions.last_checkpoint_at().call() + exchange.functions.escape_delay().call()
        now = w3.eth.get_block("latest")["timestamp"]
        w3.provider.make_request("evm_increaseTime", [due - now + 1])
        w3.provider.make_request("evm_mine", [])
        done = runner.invoke(app, escape)
        assert done.exit_code == 0, done.output
        assert f"escaped: paid {7 * DOLLAR}" in done.output
        assert token.functions.balanceOf(trader).call() == 7 * DOLLAR and exchange.functions.frozen().call()
        done = runner.invoke(app, escape)
        assert done.exit_code == 1 and "nothing to escape" in done.output
    finally:
        anvil.stop()
