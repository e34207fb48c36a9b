"""`python -m ddx_offchain.cli …` is `ddx …`."""

from .app import app

app()
