"""ddx: off-chain side of a self-custodied derivatives exchange.

Pure cores (`protocol`, `tree`, `engine`, `raft` state machine) import no asyncio, web3, sockets or clock;
the shells (`node`, `api`, `chain`, `client`, `cli`) wire them to the world.
"""

__version__ = "0.1.0"
