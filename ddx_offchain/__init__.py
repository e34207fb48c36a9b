"""ddx: off-chain side of a self-custodied derivatives exchange.

Pure cores (`protocol`, `tree`, `engine`, the `raft` state machine) import no asyncio, web3, sockets, files or
clock; the shells above them wire them to the world. docs/development.md draws the layers.
"""

__version__ = "0.1.0"
