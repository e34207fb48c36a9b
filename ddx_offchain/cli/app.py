"""`ddx`: the command line of the toolkit (typer).

Each area registers its commands here; imports stay inside the commands so `ddx --help` is fast.
"""

from __future__ import annotations

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


operator_app = typer.Typer(no_args_is_help=True, help="Operator tooling: check a config before starting a node.")
app.add_typer(operator_app, name="operator")


@operator_app.command("check")
def operator_check(config: str = typer.Option(..., "--config", help="the operator's TOML config")) -> None:
    """Validate a config without starting: the config itself, the keystore (unlocked from its password variable),
    the TLS identity, the deployment manifest against the key, and the genesis. Exit 0 when `ddx node` would start."""
    from ..daemon.run import check

    raise typer.Exit(check(config, echo=typer.echo))


@app.command()
def replica(
    manifest: str = typer.Option(..., "--manifest", help="the deployment manifest (file or deployments/<network>-<id> folder)"),
    genesis: str = typer.Option(..., "--genesis", help="the engine genesis file the operators use"),
    source: list[str] = typer.Option(..., "--source", help="an operator's API URL to follow (repeat: fail-over order)"),
    rpc: str = typer.Option(..., "--rpc", help="your own JSON-RPC URL of the chain (every check runs against it)"),
    data_dir: str = typer.Option(..., "--data-dir", help="where the replica keeps its history and snapshot"),
    listen: str = typer.Option("127.0.0.1:8600", "--listen", help="HOST:PORT of the read API"),
    confirmations: int = typer.Option(6, "--confirmations", help="blocks before a sequenced chain block is checked"),
) -> None:
    """Run a public replica: follow an operator's request log, re-verify and replay it, audit every checkpoint
    against your RPC, and serve the operators' read API (books, traders, feeds, receipts, proofs). No key needed."""
    from ..daemon.replica import main

    raise typer.Exit(main(manifest_path=manifest, genesis_path=genesis, sources=source, rpc_url=rpc, data_dir=data_dir,
                          listen=listen, confirmations=confirmations))


@app.command()
def devnet(
    demo: bool = typer.Option(False, "--demo", help="run the scripted two-clock scenario on the devnet, then stop"),
    operators: int = typer.Option(3, "--operators", help="how many operators"),
    rpc: str = typer.Option(None, "--rpc", help="an external JSON-RPC node (anvil, …) instead of the embedded chain"),
    epoch_seconds: float = typer.Option(5.0, "--epoch-seconds", help="the epoch (checkpoint) interval"),
    confirmations: int = typer.Option(None, "--confirmations", help="blocks before a deposit counts (0 embedded)"),
    data_dir: str = typer.Option(None, "--data-dir", help="keep the operators' files here (default: a temp dir)"),
    ape_deploy: bool = typer.Option(False, "--ape-deploy", help="with --rpc: deploy with `ape run deploy` (node on chain id 1337)"),
    contracts_only: bool = typer.Option(
        False, "--contracts-only", help="no operators: deploy and walk deposit -> checkpoint -> claim on the embedded chain"
    ),
) -> None:
    """Local developer network (docs/checkpoints.md): an embedded py-evm chain (or `--rpc`), the contracts, N operators
    over Raft/TLS with the API, chain watcher and checkpointer. Runs until Ctrl-C; `--demo` runs the scenario and stops."""
    if contracts_only:
        from ..devnet.demo import run_demo

        run_demo(echo=typer.echo)
        return
    from ..devnet.run import run_devnet

    raise typer.Exit(run_devnet(demo=demo, operators=operators, rpc_url=rpc, epoch_seconds=epoch_seconds,
                                confirmations=confirmations, data_dir=data_dir, ape_deploy=ape_deploy, echo=typer.echo))


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
