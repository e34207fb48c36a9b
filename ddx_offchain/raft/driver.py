"""One Ready cycle, the same code in production and in the simulator.

`ReadyDriver` owns the order in which a `Ready` is handled, which is what Raft's safety rests on (etcd-io/raft's
"persist before send"; hashicorp/raft's small injected interfaces): take a Ready only when none is in flight; hand
its log frame (snapshot, entries, hard state) to the `LogStore`; only once that is durable send its messages, then
note the soft and hard state, install a received snapshot, apply the committed entries, confirm read states, and
advance the RawNode. The driver does no I/O and reads no clock: the asyncio runtime (runtime.py) runs it with a
disk thread, TLS transport and wall clock; the deterministic simulator (ddx_offchain/testing/sim) runs the same
driver over a simulated disk (with page cache and crash loss), network and clock, from one seed.

Ports (small Protocols): `LogStore` (where a Ready's log frame goes) and `ReadyHandler` (what the owner does with
a durable Ready: transport, application, waiters). A shell's loop is::

    ready = driver.next_ready()
    if ready is not None and driver.persist(ready):   # durable at once (nothing to sync)
        driver.durable(ready)
    # ... else, when the log store reports the write durable: driver.durable(ready)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..errors import DdxError
from .messages import Entry, HardState, Message, ReadState, Snapshot, SoftState
from .rawnode import RawNode, Ready


class DriverError(DdxError):
    """The driver was used against its contract (a second Ready while one is in flight, a stranger Ready)."""

    reason = "raft_driver"


class LogStore(Protocol):
    """Durable storage of the Raft log: DiskStorage (raft/logstore) in production, SimDisk in the simulator."""

    def persist(self, ready: Ready) -> bool:
        """Stage the Ready's snapshot, entries and hard state (in that order). True: nothing needs to reach the disk,
        the frame is as durable as it must be now; False: the owner makes it durable (an fsync on a thread, a
        simulated fsync event) and then calls `ReadyDriver.durable`."""
        ...


class ReadyHandler(Protocol):
    """What the owner of a RawNode does with a Ready once its log frame is durable, in this order."""

    def send(self, messages: Sequence[Message]) -> None: ...

    def on_soft_state(self, soft_state: SoftState) -> None: ...

    def on_hard_state(self, hard_state: HardState) -> None: ...

    def restore(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader: the application's state becomes the snapshot's."""
        ...

    def apply(self, entries: Sequence[Entry]) -> None:
        """Apply committed entries, in order (conf changes through `RawNode.apply_conf_change`)."""
        ...

    def on_read_states(self, read_states: Sequence[ReadState]) -> None: ...

    def after_advance(self) -> None:
        """The Ready is done and the RawNode advanced: the moment to consider a local snapshot."""
        ...


class ReadyDriver:
    def __init__(self, raw: RawNode, log: LogStore, handler: ReadyHandler) -> None:
        self.raw = raw
        self.log = log
        self.handler = handler
        self.in_flight: Ready | None = None
        self.readies = 0

    def next_ready(self) -> Ready | None:
        """The next Ready, if the node has one and none is in flight (one at a time: etcd's contract)."""
        if self.in_flight is not None or not self.raw.has_ready():
            return None
        ready = self.in_flight = self.raw.ready()
        self.readies += 1
        return ready

    def persist(self, ready: Ready) -> bool:
        """Hand the Ready's log frame to the log store; True if it is durable already."""
        if ready is not self.in_flight:
            raise DriverError("persist: not the Ready in flight")
        return self.log.persist(ready)

    def durable(self, ready: Ready) -> None:
        """The Ready's log frame is durable: now (and only now) send, apply and advance."""
        if ready is not self.in_flight:
            raise DriverError("durable: not the Ready in flight")
        handler = self.handler
        if ready.messages:
            handler.send(ready.messages)  # persist before send: a vote or an ack promises what is on disk
        if ready.soft_state is not None:
            handler.on_soft_state(ready.soft_state)
        if ready.hard_state is not None:
            handler.on_hard_state(ready.hard_state)
        if ready.snapshot is not None and not ready.snapshot.is_empty():
            handler.restore(ready.snapshot)
        if ready.committed_entries:
            handler.apply(ready.committed_entries)
        if ready.read_states:
            handler.on_read_states(ready.read_states)
        self.raw.advance(ready)
        self.in_flight = None
        handler.after_advance()

    def apply_durable_committed(self) -> bool:
        """Apply committed entries that are durable here already, without waiting for a Ready (one may be in
        flight, its write running): the leader's acknowledgement of a request then waits for the quorum's fsyncs
        only, not also for the fsync of the batch proposed after it. Returns whether anything was applied; the
        owner serves reads that waited for it (the snapshot check stays in `after_advance`, between writes)."""
        entries = self.raw.take_durable_committed()
        if not entries:
            return False
        self.handler.apply(entries)
        self.raw.applied(entries)
        return True

    def abandon(self) -> None:
        """The node crashed or stopped with a Ready in flight: it is never finished (a restart reads the disk)."""
        self.in_flight = None
