"""The whole stack under the deterministic simulator: every node runs the operator's state machine and the engine
(ddx_offchain/testing/sim/exchange.py) under crashes, partitions, drops, duplicates, disk faults, membership changes
and snapshots; after every applied entry the roots agree, collateral is conserved, nothing is sequenced twice.

Default: 200 seeds x 4,000 steps. More:
    DDX_STACK_SEEDS=2000 DDX_STACK_STEPS=8000 .venv/bin/python -m pytest tests/sim -q
A failure prints the one command that replays it:
    python -m ddx_offchain.testing.sim --stack --seed N --steps M --trace
"""

from __future__ import annotations

import os

import pytest

from ddx_offchain.node.state_machine import ExchangeStateMachine
from ddx_offchain.testing.sim import Options, Simulation, SimulationFailure
from ddx_offchain.testing.sim.exchange import ExchangeFSM

SEEDS = int(os.environ.get("DDX_STACK_SEEDS", "200"))
STEPS = int(os.environ.get("DDX_STACK_STEPS", "4000"))
BATCH = 25


@pytest.mark.parametrize("first_seed", range(0, SEEDS, BATCH))
def test_the_operator_state_machine_stays_deterministic_conserving_and_exactly_once(first_seed):
    for seed in range(first_seed, min(first_seed + BATCH, SEEDS)):
        sim = Simulation(seed, Options(steps=STEPS, stack=True))
        try:
            sim.run()
        except SimulationFailure as exc:
            pytest.fail(str(exc), pytrace=False)
        assert sim.observer.checks > 0, f"seed {seed}: no entry was applied"


def test_runs_exercise_the_exchange():
    """Guard against a stack simulation that passes because nothing happens."""
    acknowledged = epochs = positions = duplicates = restores = forced = 0
    for seed in range(12):
        sim = Simulation(seed, Options(steps=STEPS, stack=True))
        sim.run()
        acknowledged += sum(len(c.acked) for c in sim.clients)
        member = sim.checker.final_members()[0]
        engine = member.fsm.engine
        epochs += engine.epoch
        positions += sum(1 for a in engine.accounts.values() for p in a.positions.values() if p.size)
        restores += sum(1 for n in sim.nodes.values() if not n.disk.durable.snapshot().is_empty())
        duplicates += sum(n.fsm.duplicates for n in sim.nodes.values())
        forced += engine.forced_seq  # forced requests from L1 taken, under the same faults
    assert acknowledged > 300 and epochs > 5 and positions > 20 and restores > 5 and forced > 3
    assert duplicates > 0  # retried bytes committed twice, and applied as duplicates


def _first_failure(seeds: int, steps: int = 2000) -> str | None:
    for seed in range(seeds):
        try:
            Simulation(seed, Options(steps=steps, stack=True)).run()
        except SimulationFailure as exc:
            return str(exc)
    return None


def test_catches_a_node_whose_state_diverges(monkeypatch):
    original = ExchangeFSM.apply

    def apply(self, index, data):
        if self.node_id == 2 and index == 12:  # one node's engine drifts: a unit deposited nowhere else
            account = next(iter(self.engine.accounts.values()))
            account.collateral += 1
            ledger = self.engine.ledgers[account.token]
            ledger.deposited += 1  # conserved on its own, so only the roots can tell
            self.engine.dirty.update((account, ledger))
        return original(self, index, data)

    monkeypatch.setattr(ExchangeFSM, "apply", apply)
    failure = _first_failure(6)
    assert failure is not None and "state roots diverge at log index" in failure
    assert "replay: python -m ddx_offchain.testing.sim --stack --seed" in failure


def test_catches_collateral_that_is_not_conserved(monkeypatch):
    original = ExchangeFSM._check_state

    def check_state(self, index):
        if index == 12:  # every node makes the same money from nowhere: roots agree, conservation does not
            account = next(iter(self.engine.accounts.values()))
            account.collateral += 1
            self.engine.dirty.add(account)
        return original(self, index)

    monkeypatch.setattr(ExchangeFSM, "_check_state", check_state)
    failure = _first_failure(6)
    assert failure is not None and "collateral not conserved" in failure


def test_catches_a_request_sequenced_twice(monkeypatch):
    monkeypatch.setattr(ExchangeStateMachine, "seen", lambda self, trader, nonce: None)
    monkeypatch.setattr(ExchangeStateMachine, "_remember", lambda self, trader, nonce, seen: None)  # no dedupe
    failure = _first_failure(30)
    assert failure is not None and "sequenced twice" in failure
