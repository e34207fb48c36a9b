"""`ddx`: every command of the toolkit (typer). Commands parse arguments and print; the work is done below."""

from .app import app

__all__ = ["app"]
