"""Deterministic simulator for the Raft core: replay a run with `python -m ddx_offchain.testing.sim --seed N`."""

from ddx_offchain.testing.sim.fsm import SimulationFailure
from ddx_offchain.testing.sim.simulator import Options, Simulation, replay_command

__all__ = ["Options", "Simulation", "SimulationFailure", "replay_command"]
