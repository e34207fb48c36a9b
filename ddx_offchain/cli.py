"""`ddx`: the command line of the toolkit (typer).

Each area registers its commands here; imports stay inside the commands so `ddx --help` is fast.
"""

from __future__ import annotations

import typer

from . import __version__

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ddx: self-custodied derivatives settlement toolkit")


@app.command()
def version() -> None:
    """Print the ddx version."""
    typer.echo(__version__)


@app.command()
def node(config: str = typer.Option(..., "--config", help="the operator's TOML config (docs/operations.md)")) -> None:
    """Run one operator: Raft, engine, history and the API, until SIGTERM or Ctrl-C."""
    from .node.run import main

    raise typer.Exit(main(config))


@app.command()
def devnet(
    demo: bool = typer.Option(False, "--demo", help="deploy on the embedded chain and walk deposit -> checkpoint -> claim"),
) -> None:
    """Local developer network. Today: `--demo`, the settlement walk-through on an embedded py-evm chain."""
    if not demo:
        typer.echo("only `ddx devnet --demo` exists so far (the operator cluster devnet is issue 7)", err=True)
        raise typer.Exit(2)
    from .devnet.demo import run_demo

    run_demo(echo=typer.echo)


if __name__ == "__main__":  # pragma: no cover
    app()
