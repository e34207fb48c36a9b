"""The Ready cycle is one piece of code (raft/driver.py): the asyncio runtime and the simulator both run it, so a
bug in it is a bug the simulator finds."""

from __future__ import annotations

import pytest

from ddx_offchain.raft.driver import DriverError, ReadyDriver
from ddx_offchain.testing.sim import Options, Simulation, SimulationFailure


def test_the_simulator_drives_every_ready_through_the_production_driver(monkeypatch):
    calls = {"persist": 0, "durable": 0}
    persist, durable = ReadyDriver.persist, ReadyDriver.durable

    def counting_persist(self, ready):
        calls["persist"] += 1
        return persist(self, ready)

    def counting_durable(self, ready):
        calls["durable"] += 1
        return durable(self, ready)

    monkeypatch.setattr(ReadyDriver, "persist", counting_persist)
    monkeypatch.setattr(ReadyDriver, "durable", counting_durable)
    sim = Simulation(3, Options(steps=1500))
    sim.run()
    readies = sum(n.driver.readies for n in sim.nodes.values() if n.driver is not None)
    assert calls["durable"] > 100 and calls["persist"] >= calls["durable"] and readies > 0


def test_a_driver_that_sends_before_the_log_is_durable_is_caught(monkeypatch):
    """Inject the classic bug into the production driver: send a Ready's messages (votes, acks) before its
    log frame is durable. The simulator, running that driver, must report it."""
    persist = ReadyDriver.persist

    def eager(self, ready):
        if ready.messages:
            self.handler.send(ready.messages)
            ready.messages = ()
        return persist(self, ready)

    monkeypatch.setattr(ReadyDriver, "persist", eager)
    failure = None
    for seed in range(10):
        try:
            Simulation(seed, Options(steps=1500)).run()
        except SimulationFailure as exc:
            failure = str(exc)
            break
    assert failure is not None and "replay: python -m ddx_offchain.testing.sim" in failure


class _Log:
    def __init__(self, durable_now: bool) -> None:
        self.durable_now = durable_now
        self.frames = []

    def persist(self, ready) -> bool:
        self.frames.append(ready)
        return self.durable_now


class _Handler:
    def __init__(self) -> None:
        self.events = []

    def __getattr__(self, name):
        return lambda *args: self.events.append(name)


def test_one_ready_at_a_time_and_nothing_sent_before_it_is_durable():
    from ddx_offchain.raft.core.config import Config
    from ddx_offchain.raft.messages import ConfState
    from ddx_offchain.raft.rawnode import RawNode
    from ddx_offchain.raft.storage import MemoryStorage

    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    raw = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1), storage)
    log, handler = _Log(durable_now=False), _Handler()
    driver = ReadyDriver(raw, log, handler)
    raw.campaign()
    ready = driver.next_ready()
    assert ready is not None and driver.next_ready() is None  # one in flight
    assert driver.persist(ready) is False and handler.events == []  # written, not durable: nothing sent
    with pytest.raises(DriverError):
        driver.durable(object())
    driver.durable(ready)
    assert driver.in_flight is None and handler.events[-1] == "after_advance"
