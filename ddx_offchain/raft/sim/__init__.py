"""Deterministic simulator for the Raft core: replay a run with `python -m ddx_offchain.raft.sim --seed N`."""

from ddx_offchain.raft.sim.fsm import SimulationFailure
from ddx_offchain.raft.sim.simulator import Options, Simulation, replay_command

__all__ = ["Options", "Simulation", "SimulationFailure", "replay_command"]
