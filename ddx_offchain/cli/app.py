"""`ddx`: the command line of the toolkit (typer).

Each area registers its commands here; imports stay inside the commands so `ddx --help` is fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .. import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ddx: self-custodied derivatives settlement toolkit")


@app.command()
def version() -> None:
    """Print the ddx version."""
    typer.echo(__version__)


@app.command()
def node(config: str = typer.Option(..., "--config", help="the operator's TOML config (docs/operations.md)")) -> None:
    """Run one operator: Raft, engine, history and the API, until SIGTERM or Ctrl-C."""
    from ..daemon.run import main

    raise typer.Exit(main(config))


operator_app = typer.Typer(
    no_args_is_help=True, help="Operator tooling: write a cluster's files, point them at a deployment, check a config."
)
app.add_typer(operator_app, name="operator")


@operator_app.command("check")
def operator_check(config: str = typer.Option(..., "--config", help="the operator's TOML config")) -> None:
    """Validate a config without starting: the config itself, the keystore (unlocked from its password variable),
    the TLS identity, the deployment manifest against the key, and the genesis. Exit 0 when `ddx node` would start."""
    from ..daemon.run import check

    raise typer.Exit(check(config, echo=typer.echo))


@operator_app.command("init")
def operator_init(
    out: str = typer.Option(..., "--out", help="where to write one folder per operator (must be empty or absent)"),
    hosts: str = typer.Option(..., "--hosts", help="comma-separated host of each operator, e.g. a.example.org,b.example.org,c.example.org"),
    genesis_spec: str = typer.Option(..., "--genesis-spec", help="TOML or JSON: tokens and markets (other market fields default)"),
    raft_port: int = typer.Option(9001, "--raft-port", help="Raft/TLS port (operators sharing a host count up from it)"),
    api_port: int = typer.Option(8001, "--api-port", help="API port (operators sharing a host count up from it)"),
    scheme: str = typer.Option("https", "--scheme", help="scheme of the public API URLs (http for a local test)"),
    manifest: str = typer.Option(None, "--manifest", help="an exchange already deployed for these operators (else: set-deployment later)"),
    rpc: str = typer.Option("", "--rpc", help="the chain RPC each node uses for its chain side"),
    password_env: str = typer.Option("DDX_KEYSTORE_PASSWORD", "--password-env", help="variable holding the keystore password"),
    kdf_n: int = typer.Option(65_536, "--kdf-n", help="scrypt cost of the keystores (memory 128 x n bytes)"),
) -> None:
    """Write every operator's folder: encrypted key, TLS identity, peers' certificates, genesis and an explained config.
    Prints the operator addresses to deploy the exchange with. Copy folder opI to machine I."""
    import os

    from ..daemon.provision import genesis_from_spec, init_cluster, load_spec, plan_cluster
    from ..errors import ConfigError

    try:
        plans = plan_cluster([h.strip() for h in hosts.split(",") if h.strip()], raft_port=raft_port, api_port=api_port,
                             scheme=scheme)
        genesis = genesis_from_spec(load_spec(Path(genesis_spec)))
        result = init_cluster(Path(out), plans, genesis, os.environ.get(password_env, ""), rpc=rpc,
                              manifest=Path(manifest) if manifest else None, password_env=password_env, kdf_n=kdf_n)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for plan, folder, address in zip(plans, result.folders, result.addresses):
        typer.echo(f"operator {plan.id}: {address}  {folder}  (raft {plan.host}:{plan.raft_port}, API {plan.public_url})")
    if manifest is None:
        typer.echo("next: deploy the exchange with these operators, then `ddx operator set-deployment --manifest "
                   f"<manifest> {out}`; then copy each folder to its machine and run `ddx node --config node.toml`")


@operator_app.command("set-deployment")
def operator_set_deployment(
    folder: str = typer.Argument(..., help="the folder `ddx operator init` wrote"),
    manifest: str = typer.Option(..., "--manifest", help="the deployment manifest of the exchange"),
    rpc: str = typer.Option("", "--rpc", help="the chain RPC each node uses for its chain side"),
) -> None:
    """Point every operator config under FOLDER at a deployed exchange (copies the manifest in)."""
    from ..daemon.provision import set_deployment
    from ..deployment.manifest import ManifestError
    from ..errors import ConfigError

    try:
        for config in set_deployment(Path(folder), Path(manifest), rpc=rpc):
            typer.echo(f"updated {config}")
    except (ConfigError, ManifestError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def replica(
    manifest: str = typer.Option(..., "--manifest", help="the deployment manifest (file or deployments/<network>-<id> folder)"),
    genesis: str = typer.Option(..., "--genesis", help="the engine genesis file the operators use"),
    source: list[str] = typer.Option(..., "--source", help="an operator's API URL to follow (repeat: fail-over order)"),
    rpc: str = typer.Option(..., "--rpc", help="your own JSON-RPC URL of the chain (every check runs against it)"),
    data_dir: str = typer.Option(..., "--data-dir", help="where the replica keeps its history and snapshot"),
    listen: str = typer.Option("127.0.0.1:8600", "--listen", help="HOST:PORT of the read API"),
    confirmations: int = typer.Option(6, "--confirmations", help="blocks before a sequenced chain block is checked"),
    read_limit: str = typer.Option("200/100", "--read-limit",
                                   help="reads per client IP: CAPACITY/PER_SECOND (a token bucket), or off"),
    trusted_proxy: list[str] = typer.Option([], "--trusted-proxy",
                                            help="a reverse proxy (address or CIDR) whose X-Forwarded-For names the "
                                                 "client for --read-limit (repeat for several)"),
) -> None:
    """Run a public replica: follow an operator's request log, re-verify and replay it, audit every checkpoint
    against your RPC, and serve the operators' read API (books, traders, feeds, receipts, proofs). No key needed."""
    from ..daemon.replica import main

    raise typer.Exit(main(manifest_path=manifest, genesis_path=genesis, sources=source, rpc_url=rpc, data_dir=data_dir,
                          listen=listen, confirmations=confirmations, read_limit=read_limit,
                          trusted_proxies=trusted_proxy))


devnet_app = typer.Typer(
    help="Local developer network: anvil (or an embedded chain), the contracts, operators over Raft/TLS with the API, "
    "chain watcher, checkpointer and price feeds (docs/devnet.md).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(devnet_app, name="devnet")


@devnet_app.callback()
def devnet(
    ctx: typer.Context,
    demo: bool = typer.Option(False, "--demo", help="run the scripted two-clock scenario on the embedded chain, then stop"),
    operators: int = typer.Option(4, "--operators", help="how many operators (threshold: the smallest above 2/3)"),
    rpc: str = typer.Option(None, "--rpc", help="an external JSON-RPC node instead of starting anvil"),
    embedded: bool = typer.Option(False, "--embedded", help="the in-process py-evm chain (no JSON-RPC endpoint)"),
    rpc_port: int = typer.Option(8545, "--rpc-port", help="the port of the anvil the devnet starts"),
    fund: list[str] = typer.Option([], "--fund", help="an address to give ETH and mock collateral (repeatable)"),
    epoch_seconds: float = typer.Option(5.0, "--epoch-seconds", help="the epoch (checkpoint) interval"),
    confirmations: int = typer.Option(None, "--confirmations", help="blocks before a deposit counts (0 embedded)"),
    data_dir: str = typer.Option(None, "--data-dir", help="keep the operators' files here (default: a temp dir)"),
    ape_deploy: bool = typer.Option(False, "--ape-deploy", help="with --rpc: deploy with `ape run deploy` (node on chain id 1337)"),
    contracts_only: bool = typer.Option(
        False, "--contracts-only", help="no operators: deploy and walk deposit -> checkpoint -> claim on the embedded chain"
    ),
) -> None:
    """Start the devnet and run until Ctrl-C (`--demo`: run the scenario and stop). Prints the JSON-RPC URL, chain id,
    funded dev accounts (dev-only keys), the operators' APIs, genesis and manifest paths."""
    if ctx.invoked_subcommand is not None:
        return
    if contracts_only:
        from ..devnet.demo import run_demo

        run_demo(echo=typer.echo)
        return
    from ..devnet.run import run_devnet

    raise typer.Exit(run_devnet(demo=demo, operators=operators, rpc_url=rpc, embedded=embedded, rpc_port=rpc_port,
                                fund=fund, epoch_seconds=epoch_seconds, confirmations=confirmations, data_dir=data_dir,
                                ape_deploy=ape_deploy, echo=typer.echo))


def _devnet_info(info: str | None) -> dict:
    from ..devnet.run import devnet_info_path

    path = Path(info) if info else devnet_info_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        typer.echo(f"no running devnet described at {path} ({exc}): start `ddx devnet` first, or pass --info", err=True)
        raise typer.Exit(2) from None


@devnet_app.command("price")
def devnet_price(
    market: str = typer.Argument(..., help="the market, e.g. ETHP"),
    value: str = typer.Argument(..., help="the new index price in quote units, e.g. 2150.5"),
    info: str = typer.Option(None, "--info", help="the devnet info file (default: the running devnet's)"),
) -> None:
    """Set a market's mock Chainlink aggregator (the operators' feeds follow, clamped per update)."""
    from web3 import Web3

    from ..chain.price_sources import PriceSourceError, decimal_units
    from ..deployment.artifacts import shipped_abi
    from ..devnet.prices import FEED_DECIMALS, set_answer

    doc = _devnet_info(info)
    if market not in doc.get("aggregators", {}) or not doc.get("rpc"):
        typer.echo(f"this devnet has no aggregator for {market} reachable over JSON-RPC", err=True)
        raise typer.Exit(2)
    w3 = Web3(Web3.HTTPProvider(doc["rpc"]))
    try:
        set_answer(w3.eth.contract(address=doc["aggregators"][market], abi=shipped_abi("MockAggregator")),
                   decimal_units(value, FEED_DECIMALS))
    except (PriceSourceError, ValueError) as exc:
        typer.echo(f"VALUE: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{market} aggregator set to {value} (the operators sequence it, clamped per update)")


@devnet_app.command("fund")
def devnet_fund(
    address: str = typer.Argument(..., help="the address to fund"),
    amount: str = typer.Option("1000000", "--amount", help="mock collateral, in whole units"),
    info: str = typer.Option(None, "--info", help="the devnet info file (default: the running devnet's)"),
) -> None:
    """Faucet: give an address 10 ETH and mock collateral on the running devnet."""
    from web3 import Web3

    from ..chain.price_sources import PriceSourceError, decimal_units
    from ..deployment.artifacts import shipped_abi
    from ..devnet.cluster import fund_address

    doc = _devnet_info(info)
    if not doc.get("rpc"):
        typer.echo("this devnet has no JSON-RPC endpoint (it runs on the embedded chain)", err=True)
        raise typer.Exit(2)
    w3 = Web3(Web3.HTTPProvider(doc["rpc"]))
    try:
        to = Web3.to_checksum_address(address)
        units = decimal_units(amount, doc["collateralDecimals"])
    except (ValueError, PriceSourceError) as exc:
        typer.echo(f"{exc}", err=True)
        raise typer.Exit(2) from None
    fund_address(w3.eth.contract(address=doc["collateral"], abi=shipped_abi("MockERC20")), to, units, 10 * 10**18)
    typer.echo(f"funded {to} with 10 ETH and {amount} mock collateral")


def _register_settlement_commands() -> None:
    """`ddx withdraw request|status|claim`, `ddx force withdraw|cancel-all|close|status`, `ddx escape`, `ddx audit`
    (ddx_offchain/cli/settlement.py)."""
    from . import settlement as cli_settlement

    app.add_typer(cli_settlement.withdraw_app, name="withdraw")
    app.add_typer(cli_settlement.force_app, name="force")
    app.command("escape")(cli_settlement.escape)
    app.command("audit")(cli_settlement.audit)


_register_settlement_commands()


if __name__ == "__main__":  # pragma: no cover
    app()
