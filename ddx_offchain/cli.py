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


if __name__ == "__main__":  # pragma: no cover
    app()
