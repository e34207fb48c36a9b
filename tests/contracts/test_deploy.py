"""Deployment: `ape run deploy` end to end on ape's local py-evm network, the shared deployment library on the
embedded chain, configuration validation, and manifests that never clobber an older deployment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from ddx_offchain.deployment.artifacts import REPO_ROOT
from ddx_offchain.deployment.deploy import (
    CollateralSpec,
    DeployConfig,
    DeployConfigError,
    config_from_environment,
    deploy_and_record,
    deploy_exchange,
    dev_operator_keys,
)
from ddx_offchain.deployment.manifest import Manifest, ManifestError, load_abi, load_manifest, write_manifest

APE = Path(sys.executable).parent / "ape"
DEV_OPERATORS = tuple(Account.from_key(k).address for k in dev_operator_keys())


def _ape_deploy(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DDX_")}  # only this test's settings
    environment = {**inherited, "DDX_DEPLOYMENTS_DIR": str(tmp_path / "deployments"), **env}
    return subprocess.run(
        [str(APE), "run", "deploy", "--network", "ethereum:local:test"],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )


def test_ape_run_deploy_end_to_end_twice_without_clobbering(tmp_path):
    first = _ape_deploy(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    folder = tmp_path / "deployments" / "local-1337"
    manifest = load_manifest(folder)
    assert manifest.chain_id == 1337 and manifest.network == "local"
    assert manifest.operators == tuple(sorted(DEV_OPERATORS, key=lambda a: int(a, 16)))
    assert manifest.threshold == 3 and manifest.operator_set_id == 1
    assert manifest.escape_delay == 7 * 86400
    assert manifest.mock_token is not None and manifest.collateral[0].mock
    assert manifest.deployment_block >= 1
    abi = load_abi(folder, manifest, "Exchange")
    assert any(entry.get("name") == "submit_checkpoint" for entry in abi)
    # a second run (a fresh local chain reuses the same address and block) keeps the first manifest
    second = _ape_deploy(tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    files = sorted(p.name for p in folder.glob("0x*.json"))
    assert len(files) == 2, files
    assert "superseded" in second.stdout
    assert json.loads((folder / files[0]).read_text())["exchange"] == manifest.exchange


def test_ape_run_deploy_refuses_a_bad_config_and_writes_nothing(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"operators": list(DEV_OPERATORS), "threshold": 2}))
    result = _ape_deploy(tmp_path, DDX_DEPLOY_CONFIG=str(config))
    assert result.returncode != 0
    assert "threshold not above 2/3" in result.stdout + result.stderr
    assert not (tmp_path / "deployments").exists()


# ---- the shared library on the embedded chain --------------------------------------------------------------


@pytest.fixture(scope="module")
def chain():
    from ddx_offchain.deployment.embedded import Web3Deployer, embedded_web3

    return Web3Deployer(embedded_web3())


def test_library_deploys_what_the_manifest_says(chain, tmp_path):
    manifest, written = deploy_and_record(chain, DeployConfig.local_default(), local=True, root=tmp_path, log=lambda _: None)
    exchange = chain.contract("Exchange", manifest.exchange)
    assert tuple(exchange.functions.operator_set().call()) == (1, manifest.threshold, list(manifest.operators))
    token = manifest.mock_token
    assert exchange.functions.collateral_allowed(token).call()
    assert list(exchange.functions.rate_limit(token).call()) == [manifest.collateral[0].capacity, manifest.collateral[0].period]
    assert exchange.functions.escape_delay().call() == manifest.escape_delay
    assert exchange.functions.governance_delay().call() == manifest.governance_delay
    assert load_manifest(written.path) == manifest
    assert written.superseded is None
    again, written_again = deploy_and_record(chain, DeployConfig.local_default(), local=True, root=tmp_path, log=lambda _: None)
    assert again.exchange != manifest.exchange
    assert written_again.superseded == manifest.exchange
    assert load_manifest(written.path) == manifest  # the old file is untouched
    assert load_manifest(written.latest) == again


def test_mock_collateral_is_refused_off_local_networks(chain):
    with pytest.raises(DeployConfigError, match="local networks only"):
        deploy_exchange(chain, DeployConfig.local_default(), local=False, log=lambda _: None)


def test_non_local_networks_need_a_config_file():
    with pytest.raises(DeployConfigError, match="DDX_DEPLOY_CONFIG"):
        config_from_environment({}, local=False)


def test_environment_overrides(tmp_path):
    keys = dev_operator_keys(7)
    operators = ",".join(Account.from_key(k).address for k in keys)
    config = config_from_environment(
        {"DDX_OPERATORS": operators, "DDX_ESCAPE_DELAY": "3600", "DDX_GOVERNANCE_DELAY": "600", "DDX_FORCED_DEADLINE": "200"},
        local=True,
    ).validated()
    assert len(config.operators) == 7 and config.threshold == 5
    assert (config.escape_delay, config.governance_delay, config.forced_deadline) == (3600, 600, 200)
    config = config_from_environment({"DDX_OPERATORS": operators, "DDX_THRESHOLD": "7"}, local=True)
    assert config.validated().threshold == 7


BAD_CONFIGS = [
    ({"operators": []}, "empty operator set"),
    ({"operators": list(DEV_OPERATORS), "threshold": 5}, "threshold above set size"),
    ({"operators": list(DEV_OPERATORS) + [DEV_OPERATORS[0]], "threshold": 4}, "duplicate operator"),
    ({"operators": list(DEV_OPERATORS), "escape_delay": 0}, "escape_delay"),
    ({"operators": list(DEV_OPERATORS), "forced_deadline": 0}, "forced_deadline"),
    ({"operators": list(DEV_OPERATORS), "forced_deadline": 3600, "governance_delay": 3 * 3600 - 1}, "at least 3 x forced_deadline"),
    ({"operators": list(DEV_OPERATORS), "collateral": [{"token": "0x12", "capacity": 1, "period": 1}]}, "not an address"),
    ({"operators": list(DEV_OPERATORS), "collateral": [{"mock": True, "capacity": 0, "period": 1}]}, "capacity"),
    ({"operators": list(DEV_OPERATORS), "collateral": [{"mock": True, "capacity": 1, "period": 10**9}]}, "period"),
    ({"operators": list(DEV_OPERATORS), "owner": "0x" + "11" * 20}, "unknown config keys"),
]


@pytest.mark.parametrize("data,reason", BAD_CONFIGS)
def test_bad_configs_are_refused_before_deploying(tmp_path, data, reason):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DeployConfigError, match=reason):
        config_from_environment({"DDX_DEPLOY_CONFIG": str(path)}, local=True).validated()


def test_config_with_real_tokens(tmp_path):
    token = "0x" + "ab" * 20
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "operators": list(DEV_OPERATORS), "threshold": 4,
        "collateral": [{"token": token, "capacity": 10**12, "period": 86400, "symbol": "USDC", "decimals": 6}],
    }))
    config = config_from_environment({"DDX_DEPLOY_CONFIG": str(path)}, local=False).validated()
    assert config.collateral == (CollateralSpec(token, 10**12, 86400, "USDC", 6),)


def test_manifest_round_trip_and_malformed_files(tmp_path):
    manifest = Manifest(
        network="local", chain_id=1337, exchange="0x" + "11" * 20, deployment_block=3, deployer="0x" + "22" * 20,
        operators=DEV_OPERATORS, threshold=3, operator_set_id=1, supermajority_required=True,
        escape_delay=1, forced_deadline=1, governance_delay=1, collateral=(),
    )
    assert Manifest.from_json(manifest.to_json()) == Manifest.from_json(Manifest.from_json(manifest.to_json()).to_json())
    written = write_manifest(manifest, tmp_path)
    assert write_manifest(manifest, tmp_path).path != written.path  # same exchange and block: a second file
    (tmp_path / "broken.json").write_text('{"version": 1, "network": "x"}')
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "broken.json")
    (tmp_path / "evil.json").write_text(json.dumps({**json.loads(manifest.to_json()), "chain_id": "1337"}))
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "evil.json")
