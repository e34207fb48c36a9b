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
