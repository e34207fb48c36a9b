"""The runtime's ports (hashicorp/raft's small injected interfaces): what `RaftNode` needs from the world.

- `LogStore` (raft/driver.py): where a Ready's log frame goes (`DiskStorage` through the runtime's `_DiskLog`;
  the simulator's `SimDisk` through `_SimLog`).
- `PeerTransport`: how messages reach peers and come back (`transport.Transport`: mutual-TLS TCP).
- `StorageOpener`: how the durable log is opened for a node (`DiskStorage` in `data_dir` by default).
- `raft.fsm.StateMachine`: the application the committed entries go to.

`RaftNode(config, state_machine, open_storage=..., make_transport=...)` takes them; the defaults wire production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .driver import LogStore, ReadyHandler
from .messages import Message

__all__ = ["LogStore", "PeerTransport", "ReadyHandler", "StorageOpener", "TransportFactory"]


class TransportStats(Protocol):
    inbox_pauses: int
    inbox_overflows: int


class PeerTransport(Protocol):
    """Delivery of Raft messages between operators. Inbound batches go to the handler given at construction;
    `consumed(peer)` tells the transport a batch was stepped (its inbox bound)."""

    port: int
    stats: TransportStats

    async def start(self) -> None: ...

    def send(self, messages: list[Message]) -> None: ...

    def consumed(self, peer: int) -> None: ...

    def connected_peers(self) -> list[int]: ...

    async def close(self) -> None: ...


TransportFactory = Callable[..., PeerTransport]  # (TransportConfig, TransportHandler) -> PeerTransport
StorageOpener = Callable[..., object]  # (NodeConfig) -> DiskStorage (the core's Storage plus the log writes)
