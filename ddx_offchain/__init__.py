"""ddx: off-chain side of a self-custodied derivatives exchange.

Pure cores (`protocol`, `tree`, `engine`, the `raft` state machine) import no asyncio, web3, sockets, files or
clock; the shells above them wire them to the world. docs/development.md draws the layers.
"""

__version__ = "0.1.0"

# DDX_PURE_PYTHON=1 runs the pure-Python reference of the compiled kernels (ddx_offchain/tree/kernels.py). Read here,
# once per process, so that the pure cores themselves never look at the environment.
import os as _os

PURE_PYTHON = _os.environ.get("DDX_PURE_PYTHON", "") not in ("", "0")
del _os
