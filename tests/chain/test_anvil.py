"""Against a real node (anvil from npm): a reorg within the confirmation depth, and a gas price spike."""

from __future__ import annotations

import asyncio

import pytest
from chainlab import http_lab

from ddx_offchain.chain.checkpointer import CheckpointerConfig
from ddx_offchain.chain.core.follower import FollowerConfig
from ddx_offchain.chain.core.relay_policy import GWEI, FeePolicy


async def closing(lab, scenario):
    try:
        await scenario
    finally:
        await lab.close()



def test_a_reorg_within_the_confirmation_depth_never_reaches_the_engine(anvil):
    lab = http_lab(anvil.url)
    rpc = lab.rpc()
    watcher = lab.watcher(rpc, FollowerConfig(confirmations=6, anchor_interval=1000))

    async def scenario():
        lab.mine()
        await watcher.poll_once()
        snapshot = lab.w3.provider.make_request("evm_snapshot", [])["result"]
        lab.deposit(0, 111)  # on the fork that will be abandoned
        lab.mine()
        assert await watcher.poll_once() == []  # 2 blocks deep: not confirmed at depth 6
        abandoned_tip = watcher.follower.tip
        assert lab.w3.provider.make_request("evm_revert", [snapshot])["result"] is True
        lab.deposit(1, 222)  # the canonical history from here on
        lab.mine(7)
        assert lab.w3.eth.block_number > abandoned_tip
        handed = await watcher.poll_once()
        assert [(d.seq, d.amount) for b in handed for d in b.deposits] == [(1, 222)]
        canonical = lab.w3.eth.get_block(handed[0].number)
        assert handed[0].hash == bytes(canonical["hash"])
        assert watcher.follower.reorgs == 1 and watcher.follower.deepest_reorg >= 1
        assert watcher.status()["reorgs"] == 1 and watcher.status()["alarm"] is None
        assert lab.engine.deposit_seq == 1  # the abandoned 111 was never credited

    asyncio.run(closing(lab, scenario()))


def test_a_reorg_deeper_than_the_depth_halts_ingestion_with_an_alarm(anvil):
    lab = http_lab(anvil.url)
    watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=2, anchor_interval=1000))

    async def scenario():
        snapshot = lab.w3.provider.make_request("evm_snapshot", [])["result"]
        lab.deposit(0, 111)
        lab.mine(3)
        assert [d.amount for b in await watcher.poll_once() for d in b.deposits] == [111]
        lab.w3.provider.make_request("evm_revert", [snapshot])
        lab.deposit(1, 222)
        lab.mine(6)
        assert await watcher.poll_once() == []
        status = watcher.status()
        assert status["state"] == "halted" and status["alarm"]["kind"] == "sequenced_block_reorged"
        assert lab.engine.deposit_seq == 1  # nothing from the new fork was sequenced on top of the old one

    asyncio.run(closing(lab, scenario()))


def test_a_gas_price_spike_above_the_cap_waits_then_records(anvil):
    lab = http_lab(anvil.url)
    config = CheckpointerConfig(
        confirmations=1, relay_timeout_s=5.0, fee_policy=FeePolicy(max_fee_cap=50 * GWEI, priority_fee=GWEI)
    )
    lab.add_operators(config)
    watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))

    async def ticks(n: int) -> None:
        for _ in range(n):
            await lab.tick_all()

    async def scenario():
        lab.deposit(0, 5)
        await watcher.poll_once()
        lab.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(400 * GWEI)])
        lab.mine()
        epoch = lab.freeze_epoch()
        await ticks(4)
        assert lab.exchange.functions.latest_epoch().call() == 0
        relayer = next(op for op in lab.operators if op.checkpointer.progress.epochs[epoch].failures)
        entry = relayer.checkpointer.status()["epochs"][-1]
        assert entry["stage"] == "quorum" and "above the cap" in entry["lastError"] and entry["txHashes"] == []
        assert relayer.checkpointer.status()["state"] == "retrying"
        lab.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(GWEI)])
        lab.mine()
        for _ in range(40):
            await lab.tick_all(5.0)  # past the backoff
            lab.mine()
            if lab.exchange.functions.latest_epoch().call() == epoch:
                break
        assert lab.exchange.functions.latest_epoch().call() == epoch
        await ticks(3)
        assert relayer.checkpointer.status()["epochs"][-1]["stage"] in ("recorded", "final")
        submission = relayer.checkpointer.progress.epochs[epoch].submissions[-1]
        assert submission.max_fee_per_gas <= 50 * GWEI

    asyncio.run(closing(lab, scenario()))


def test_the_node_builds_its_chain_side_from_its_config(anvil, tmp_path):
    """`build_operator_chain`: what `ddx node` runs when [chain] names an RPC and a manifest."""
    from dataclasses import replace

    from web3 import Web3

    from ddx_offchain.chain.operator_chain import ChainSetupError, build_operator_chain
    from ddx_offchain.daemon.cluster_files import write_cluster
    from ddx_offchain.daemon.config import load_config
    from ddx_offchain.deployment.deploy import DeployConfig, deploy_and_record
    from ddx_offchain.deployment.embedded import Web3Deployer
    from ddx_offchain.deployment.genesis import example_genesis
    from ddx_offchain.protocol.eip712 import Domain as RequestDomain

    lab = http_lab(anvil.url)  # deploys an exchange with the lab's operators
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    config = DeployConfig(
        operators=lab.operator_set.members, threshold=lab.operator_set.threshold,
        collateral=DeployConfig.local_default().collateral,
    )
    manifest, written = deploy_and_record(
        Web3Deployer(w3, network="anvil"), config, local=True, root=tmp_path / "deployments", log=lambda _: None
    )
    files = write_cluster(tmp_path / "ops", 3, RequestDomain.of(manifest.chain_id, manifest.exchange), example_genesis(manifest.mock_token))
    settings = replace(load_config(files.configs[0]), rpc=anvil.url, manifest=written.path)

    async def scenario():
        assert await build_operator_chain(replace(settings, rpc=""), None, lambda: None, lab.keys[0]) is None
        chain, exchange = await build_operator_chain(settings, None, lambda: None, lab.keys[0])
        try:
            assert chain.checkpointer.progress.operator_set == lab.operator_set  # read from the contract
            assert chain.settings.follower.confirmations == 1 and chain.settings.deployment_block == manifest.deployment_block
            assert sorted(exchange.peer_urls) == sorted(files.api_urls[1:])
        finally:
            await chain.stop()
        other = replace(settings, domain=RequestDomain.of(manifest.chain_id, lab.exchange.address))
        with pytest.raises(ChainSetupError, match="manifest is for exchange"):
            await build_operator_chain(other, None, lambda: None, lab.keys[0])

    asyncio.run(closing(lab, scenario()))


def test_ddx_node_with_a_chain_section_runs_its_chain_side(anvil, tmp_path):
    """OperatorProcess (what `ddx node --config` runs): [chain] rpc + manifest start the watcher and checkpointer with
    the node; /v1/status carries their progress, the signature route is mounted, and both stop with the node."""
    from dataclasses import replace

    import aiohttp
    from web3 import Web3

    from ddx_offchain.daemon.cluster_files import write_cluster
    from ddx_offchain.daemon.config import load_config
    from ddx_offchain.daemon.run import OperatorProcess
    from ddx_offchain.deployment.deploy import DeployConfig, deploy_and_record
    from ddx_offchain.deployment.embedded import Web3Deployer
    from ddx_offchain.deployment.genesis import example_genesis
    from ddx_offchain.protocol.eip712 import Domain as RequestDomain

    lab = http_lab(anvil.url)
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    config = DeployConfig(
        operators=lab.operator_set.members, threshold=lab.operator_set.threshold,
        collateral=DeployConfig.local_default().collateral,
    )
    manifest, written = deploy_and_record(
        Web3Deployer(w3, network="anvil"), config, local=True, root=tmp_path / "deployments", log=lambda _: None
    )
    files = write_cluster(tmp_path / "ops", 3, RequestDomain.of(manifest.chain_id, manifest.exchange), example_genesis(manifest.mock_token))
    settings = replace(load_config(files.configs[0]), rpc=anvil.url, manifest=written.path, chain_epoch_interval_seconds=7.0)
    base = files.api_urls[0]

    async def scenario():
        running = OperatorProcess(settings, lab.keys[0])
        assert running.chain is None and running.node.checkpoint_status() == {"state": "not_configured"}
        await running.start()
        try:
            chain = running.chain
            assert chain is not None and chain.on_applied in running.node.service.listeners
            assert chain.settings.epoch_interval_s == 7.0 and chain.settings.follower.confirmations == 1
            assert len(chain._tasks) == 2 and not any(t.done() for t in chain._tasks)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/v1/status") as r:
                    checkpoint = (await r.json())["checkpoint"]
                assert checkpoint["operator"].lower() == lab.operator_set.members[0].lower()
                assert checkpoint["watcher"] == {"state": "follower"} and checkpoint["epochsProposed"] == 0
                async with http.get(f"{base}/v1/checkpoints/1/signature") as r:
                    assert r.status == 404 and (await r.json())["error"] == "not_signed"
                async with http.get(f"{base}/metrics") as r:
                    assert "ddx_chain_ingestion_halted" in await r.text()
            with pytest.raises(RuntimeError, match="already attached"):
                running.attach_chain(chain)
        finally:
            await running.stop()
        assert chain._tasks == []

    asyncio.run(closing(lab, scenario()))


def test_ddx_node_refuses_a_chain_rpc_without_a_manifest(tmp_path):
    """The chain side is built before anything starts: a bad [chain] leaves no Raft or API running."""
    from dataclasses import replace

    from ddx_offchain.chain.operator_chain import ChainSetupError
    from ddx_offchain.daemon.cluster_files import write_cluster
    from ddx_offchain.daemon.config import load_config
    from ddx_offchain.daemon.run import OperatorProcess
    from ddx_offchain.deployment.genesis import example_genesis
    from ddx_offchain.protocol.eip712 import Domain as RequestDomain

    files = write_cluster(tmp_path / "ops", 1, RequestDomain.of(1337, "0x" + "22" * 20), example_genesis("0x" + "33" * 20))
    settings = replace(load_config(files.configs[0]), rpc="http://127.0.0.1:9", manifest=None)
    running = OperatorProcess(settings, b"\x01" * 32)
    with pytest.raises(ChainSetupError, match="chain.manifest"):
        asyncio.run(running.start())
    assert running.runner is None and running.chain is None


def test_headers_come_in_one_batch_and_stop_at_the_head(anvil):
    from ddx_offchain.chain.rpc import Web3ChainRpc, http_web3
    from ddx_offchain.deployment.artifacts import compile_contract

    async def scenario():
        rpc = Web3ChainRpc(http_web3(anvil.url), "0x" + "11" * 20, compile_contract("Exchange").abi)
        try:
            for _ in range(6):
                await rpc.w3.provider.make_request("evm_mine", [])
            headers = await rpc.headers(1, 6)
            assert [h.number for h in headers] == [1, 2, 3, 4, 5, 6] and rpc._batching
            assert all(b.parent_hash == a.hash for a, b in zip(headers, headers[1:]))
            assert [h.number for h in await rpc.headers(5, 20)] == [5, 6]  # past the head: stops there
        finally:
            await rpc.close()

    asyncio.run(scenario())


def test_anvil_mining_only_on_demand_still_records_checkpoints(anvil):
    """Issue 15: against anvil as installed (a block only when a transaction arrives) the epoch anchors the head and
    every relay's gas estimate, run at the head, reverted "anchored block not in the past"; mining a block only
    moved the anchor. The relay estimates against the pending block, where the anchor is in the past."""
    from test_embedded_checkpoints import CONFIG

    lab = http_lab(anvil.url)

    async def scenario():
        lab.add_operators(CONFIG)
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.deposit(0, 5)  # the last block anvil mines on its own accord
        await watcher.poll_once()
        epoch = lab.freeze_epoch()
        assert lab.engine.block_number == lab.w3.eth.block_number  # anchored at the head: nothing mined since
        for _ in range(20):
            await lab.tick_all(1.0)  # no lab.mine(): only the relay's own transaction makes a block
            if lab.exchange.functions.latest_epoch().call() == epoch:
                break
        assert bytes(lab.exchange.functions.checkpoint_root(epoch).call()) == lab.engine.frozen_root(epoch)

    asyncio.run(closing(lab, scenario()))
