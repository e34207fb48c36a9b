"""Deploying the exchange: configuration, validation and the deployment steps, independent of the tool.

`ape run deploy` (scripts/deploy.py) and the embedded devnet (ddx_offchain/devnet) both call
`deploy_exchange` with their own `ChainDeployer`, so they run exactly the same steps and write the same
manifest (ddx_offchain/deployment/manifest.py).

Configuration: a JSON file named by $DDX_DEPLOY_CONFIG, with environment overrides ($DDX_OPERATORS,
$DDX_THRESHOLD, $DDX_ESCAPE_DELAY, $DDX_GOVERNANCE_DELAY); on local networks the defaults are the devnet
operator keys and a mock collateral token. See docs/contracts.md, "Deployment".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Protocol

from eth_account import Account
from eth_utils import is_address, to_checksum_address

from ..errors import DdxError
from ..protocol import operator_messages as om
from ..protocol.errors import ProtocolError
from ..protocol.hashing import keccak256
from .manifest import CollateralEntry, Manifest, WrittenManifest, network_folder, write_abi, write_manifest

DAY = 86400
DEFAULT_ESCAPE_DELAY = 7 * DAY
DEFAULT_GOVERNANCE_DELAY = 3 * DAY
# How long a deposit or forced request may wait for a recorded checkpoint covering it before anyone may freeze.
DEFAULT_FORCED_DEADLINE = 1 * DAY
# contracts/Exchange.vy EXIT_WINDOW_DEADLINES: governance_delay >= this many forced deadlines.
EXIT_WINDOW_DEADLINES = 3
MAX_INITIAL_TOKENS = 16  # contracts/Exchange.vy MAX_INITIAL_TOKENS
MAX_RATE_CAPACITY = (1 << 128) - 1  # custody.vy MAX_CAPACITY
MAX_RATE_PERIOD = 365 * DAY  # custody.vy MAX_PERIOD
MAX_CONFIG_BYTES = 1 << 20

DEV_OPERATOR_COUNT = 4
MOCK_SYMBOL = "USDX"
MOCK_DECIMALS = 6
MOCK_CAPACITY = 1_000_000 * 10**MOCK_DECIMALS  # per period, on local networks
MOCK_PERIOD = DAY


class DeployConfigError(DdxError, ValueError):
    """The deployment configuration is incomplete or breaks a contract rule; nothing was deployed."""


def dev_operator_keys(count: int = DEV_OPERATOR_COUNT) -> list[str]:
    """Well-known, INSECURE operator keys for local networks, ascending by address (the contract's order)."""
    keys = ["0x" + keccak256(f"ddx devnet operator {i}".encode()).hex() for i in range(count)]
    return sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))


@dataclass(frozen=True)
class CollateralSpec:
    """One allow-listed token and its rate limit. `token=None` means: deploy a mock token (local networks only)."""

    token: str | None
    capacity: int
    period: int
    symbol: str = MOCK_SYMBOL
    decimals: int = MOCK_DECIMALS


@dataclass(frozen=True)
class DeployConfig:
    operators: tuple[str, ...]
    threshold: int
    collateral: tuple[CollateralSpec, ...]
    escape_delay: int = DEFAULT_ESCAPE_DELAY
    governance_delay: int = DEFAULT_GOVERNANCE_DELAY
    supermajority_required: bool = True
    forced_deadline: int = DEFAULT_FORCED_DEADLINE

    def validated(self) -> "DeployConfig":
        """The same config with operators checksummed and sorted; raises DeployConfigError on any rule break."""
        try:
            operators = om.sort_operators(self.operators)
            om.check_operator_set(operators, self.threshold, self.supermajority_required)
        except ProtocolError as exc:
            raise DeployConfigError(str(exc)) from None
        if not 0 < self.escape_delay <= 365 * DAY:
            raise DeployConfigError("escape_delay must be between 1 second and 365 days")
        if not 0 < self.governance_delay <= 365 * DAY:
            raise DeployConfigError("governance_delay must be between 1 second and 365 days")
        if not 0 < self.forced_deadline <= 365 * DAY:
            raise DeployConfigError("forced_deadline must be between 1 second and 365 days")
        if self.governance_delay < EXIT_WINDOW_DEADLINES * self.forced_deadline:
            raise DeployConfigError(
                f"governance_delay must be at least {EXIT_WINDOW_DEADLINES} x forced_deadline "
                f"({EXIT_WINDOW_DEADLINES * self.forced_deadline} s): users must be able to exit before a change executes"
            )
        if len(self.collateral) > MAX_INITIAL_TOKENS:
            raise DeployConfigError(f"at most {MAX_INITIAL_TOKENS} initial collateral tokens")
        seen = set()
        for spec in self.collateral:
            if spec.token is not None:
                if not is_address(spec.token) or int(spec.token, 16) == 0:
                    raise DeployConfigError(f"collateral token {spec.token!r} is not an address")
                if spec.token.lower() in seen:
                    raise DeployConfigError(f"collateral token {spec.token} listed twice")
                seen.add(spec.token.lower())
            if not 0 < spec.capacity <= MAX_RATE_CAPACITY:
                raise DeployConfigError("collateral rate capacity must be in 1 .. 2**128-1")
            if not 0 < spec.period <= MAX_RATE_PERIOD:
                raise DeployConfigError("collateral rate period must be in 1 second .. 365 days")
        return replace(self, operators=operators)

    @classmethod
    def from_mapping(cls, data: Mapping) -> "DeployConfig":
        """Parse the JSON config: {"operators": [...], "threshold": N, "collateral": [{"token", "capacity",
        "period"} | {"mock": true, "capacity", "period"}], "escape_delay", "governance_delay", "supermajority_required", "forced_deadline"}."""
        if not isinstance(data, Mapping):
            raise DeployConfigError("config must be a JSON object")
        unknown = set(data) - {
            "operators", "threshold", "collateral", "escape_delay", "governance_delay", "supermajority_required",
            "forced_deadline",
        }
        if unknown:
            raise DeployConfigError(f"unknown config keys: {sorted(unknown)}")
        operators = data.get("operators")
        if not isinstance(operators, list) or not all(isinstance(a, str) for a in operators):
            raise DeployConfigError("operators must be a list of addresses")
        threshold = data.get("threshold", om.smallest_supermajority(len(operators)) if operators else 0)
        collateral = []
        for entry in data.get("collateral", []):
            if not isinstance(entry, Mapping):
                raise DeployConfigError("each collateral entry must be an object")
            token = None if entry.get("mock") is True else entry.get("token")
            if token is None and entry.get("mock") is not True:
                raise DeployConfigError("collateral entry needs a token address or \"mock\": true")
            collateral.append(
                CollateralSpec(
                    token=token,
                    capacity=_int(entry.get("capacity"), "capacity"),
                    period=_int(entry.get("period"), "period"),
                    symbol=str(entry.get("symbol", MOCK_SYMBOL)),
                    decimals=_int(entry.get("decimals", MOCK_DECIMALS), "decimals"),
                )
            )
        supermajority = data.get("supermajority_required", True)
        if not isinstance(supermajority, bool):
            raise DeployConfigError("supermajority_required must be true or false")
        return cls(
            operators=tuple(operators),
            threshold=_int(threshold, "threshold"),
            collateral=tuple(collateral),
            escape_delay=_int(data.get("escape_delay", DEFAULT_ESCAPE_DELAY), "escape_delay"),
            governance_delay=_int(data.get("governance_delay", DEFAULT_GOVERNANCE_DELAY), "governance_delay"),
            supermajority_required=supermajority,
            forced_deadline=_int(data.get("forced_deadline", DEFAULT_FORCED_DEADLINE), "forced_deadline"),
        )

    @classmethod
    def local_default(cls) -> "DeployConfig":
        """Devnet operators (dev_operator_keys), smallest > 2/3 threshold, one mock collateral token."""
        operators = tuple(Account.from_key(k).address for k in dev_operator_keys())
        return cls(
            operators=operators,
            threshold=om.smallest_supermajority(len(operators)),
            collateral=(CollateralSpec(token=None, capacity=MOCK_CAPACITY, period=MOCK_PERIOD),),
        )


def config_from_environment(env: Mapping[str, str] = os.environ, *, local: bool) -> DeployConfig:
    """$DDX_DEPLOY_CONFIG (JSON file) or, on local networks, the devnet defaults; then the env overrides."""
    path = env.get("DDX_DEPLOY_CONFIG")
    if path:
        file = Path(path)
        if not file.is_file() or file.stat().st_size > MAX_CONFIG_BYTES:
            raise DeployConfigError(f"DDX_DEPLOY_CONFIG={path}: not a readable file under 1 MiB")
        try:
            config = DeployConfig.from_mapping(json.loads(file.read_text()))
        except json.JSONDecodeError as exc:
            raise DeployConfigError(f"{path}: not JSON ({exc})") from None
    elif local:
        config = DeployConfig.local_default()
    else:
        raise DeployConfigError("set DDX_DEPLOY_CONFIG (a JSON file) to deploy on a non-local network")
    if env.get("DDX_OPERATORS"):
        operators = tuple(a.strip() for a in env["DDX_OPERATORS"].split(",") if a.strip())
        config = replace(config, operators=operators, threshold=om.smallest_supermajority(len(operators)))
    if env.get("DDX_THRESHOLD"):
        config = replace(config, threshold=_int(env["DDX_THRESHOLD"], "DDX_THRESHOLD"))
    if env.get("DDX_ESCAPE_DELAY"):
        config = replace(config, escape_delay=_int(env["DDX_ESCAPE_DELAY"], "DDX_ESCAPE_DELAY"))
    if env.get("DDX_FORCED_DEADLINE"):
        config = replace(config, forced_deadline=_int(env["DDX_FORCED_DEADLINE"], "DDX_FORCED_DEADLINE"))
    if env.get("DDX_GOVERNANCE_DELAY"):
        config = replace(config, governance_delay=_int(env["DDX_GOVERNANCE_DELAY"], "DDX_GOVERNANCE_DELAY"))
    return config


class ChainDeployer(Protocol):
    """What deploy_exchange needs from a chain tool (ape, web3): deploy compiled contracts and describe the chain."""

    network: str

    def chain_id(self) -> int: ...

    def deployer_address(self) -> str: ...

    def abi(self, name: str) -> list: ...

    def deploy(self, name: str, args: list) -> tuple[str, int]:
        """Deploy contract `name` (Exchange or MockERC20) with constructor `args`; returns (address, block)."""
        ...


def deploy_exchange(
    chain: ChainDeployer, config: DeployConfig, *, local: bool, log: Callable[[str], None] = print
) -> Manifest:
    """Validate `config`, deploy mock tokens (local only) and the exchange; returns the manifest (not written)."""
    config = config.validated()
    chain_id = chain.chain_id()
    collateral: list[CollateralEntry] = []
    for spec in config.collateral:
        if spec.token is None:
            if not local:
                raise DeployConfigError("mock collateral is for local networks only")
            address, _ = chain.deploy("MockERC20", [f"Mock {spec.symbol}", spec.symbol, spec.decimals])
            log(f"mock collateral {spec.symbol} deployed at {address}")
            collateral.append(CollateralEntry(address, spec.symbol, spec.decimals, spec.capacity, spec.period, mock=True))
        else:
            collateral.append(
                CollateralEntry(to_checksum_address(spec.token), spec.symbol, spec.decimals, spec.capacity, spec.period)
            )
    args = [
        list(config.operators),
        config.threshold,
        config.supermajority_required,
        [(c.token, c.capacity, c.period) for c in collateral],
        config.escape_delay,
        config.forced_deadline,
        config.governance_delay,
    ]
    exchange, block = chain.deploy("Exchange", args)
    log(
        f"exchange deployed at {exchange} (block {block}, chain {chain_id}): "
        f"{len(config.operators)} operators, threshold {config.threshold}"
    )
    return Manifest(
        network=chain.network,
        chain_id=chain_id,
        exchange=exchange,
        deployment_block=block,
        deployer=to_checksum_address(chain.deployer_address()),
        operators=config.operators,
        threshold=config.threshold,
        operator_set_id=1,
        supermajority_required=config.supermajority_required,
        escape_delay=config.escape_delay,
        forced_deadline=config.forced_deadline,
        governance_delay=config.governance_delay,
        collateral=tuple(collateral),
    )


def deploy_and_record(
    chain: ChainDeployer,
    config: DeployConfig,
    *,
    local: bool,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Manifest, WrittenManifest]:
    """deploy_exchange, then store the ABIs and a new manifest file (never overwriting an older deployment's)."""
    manifest = deploy_exchange(chain, config, local=local, log=log)
    folder = network_folder(chain.network, manifest.chain_id, root)
    abi_paths = {name: write_abi(folder, name, chain.abi(name)) for name in ("Exchange", "MockERC20")}
    manifest = replace(manifest, abi_paths=abi_paths)
    written = write_manifest(manifest, folder)
    if written.superseded:
        log(f"previous deployment {written.superseded} on this chain is superseded; its manifest is kept")
    log(f"manifest written to {written.path} (and {written.latest.name})")
    return manifest, written


def _int(value, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DeployConfigError(f"{what} must be a non-negative integer, got {value!r:.40}")
    return value
