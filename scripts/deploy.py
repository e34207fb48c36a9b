"""`ape run deploy --network <ecosystem>:<network>:<provider>`: deploy the ddx exchange and write its manifest.

Reads the operator set, threshold, collateral tokens with their rate limits and the delays from
$DDX_DEPLOY_CONFIG (a JSON file) with environment overrides; on local networks the defaults are the devnet
operator keys and a freshly deployed mock collateral token. The deployment steps are those of
ddx_offchain.deployment.deploy (shared with the embedded devnet); only the chain access below is ape's.

Sender: the first test account on local networks, else the ape account named by $DDX_DEPLOYER_ALIAS.
Manifests: deployments/<network>-<chain id>/ (override with $DDX_DEPLOYMENTS_DIR); an older deployment's
manifest is never overwritten.
"""

from __future__ import annotations

import os
import sys

from ape import accounts, networks, project

from ddx_offchain.deployment.deploy import DeployConfigError, config_from_environment, deploy_and_record


class ApeDeployer:
    """ddx_offchain.deployment.deploy.ChainDeployer over ape."""

    def __init__(self, sender):
        self.sender = sender
        provider = networks.provider
        self.network = provider.network.name
        self._provider = provider

    def chain_id(self) -> int:
        return self._provider.chain_id

    def deployer_address(self) -> str:
        return str(self.sender.address)

    def abi(self, name: str) -> list:
        return [entry.model_dump(mode="json", by_alias=True) for entry in self._container(name).contract_type.abi]

    def deploy(self, name: str, args: list) -> tuple[str, int]:
        instance = self.sender.deploy(self._container(name), *args)
        creation = instance.creation_metadata
        block = creation.block if creation is not None else self._provider.get_block("latest").number
        return str(instance.address), int(block)

    @staticmethod
    def _container(name: str):
        return project.get_contract(name)


def _sender(local: bool):
    if local:
        return accounts.test_accounts[0]
    alias = os.environ.get("DDX_DEPLOYER_ALIAS")
    if not alias:
        raise DeployConfigError("set DDX_DEPLOYER_ALIAS to the ape account that pays for the deployment")
    return accounts.load(alias)


def main() -> None:
    network = networks.provider.network
    local = network.is_local
    try:
        config = config_from_environment(local=local)
        manifest, written = deploy_and_record(ApeDeployer(_sender(local)), config, local=local)
    except DeployConfigError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"deployed exchange {manifest.exchange} on {manifest.network} (chain {manifest.chain_id})")
    print(f"manifest: {written.path}")
