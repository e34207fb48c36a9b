"""Peer transport: asyncio TCP + mutual TLS, length-prefixed msgpack frames, reconnect with backoff.

Each node listens for its peers and dials each peer once; a connection carries frames in one direction only
(dialer -> listener), like etcd's stream transport, so the two directions never contend for one socket.

Authentication: both sides present their operator certificate; a peer is accepted only if its certificate's
SHA-256 fingerprint is one of the pinned operator certificates from config, and every message it sends must
carry its own node id. A process without a configured operator key cannot connect, let alone inject.

Inbound back-pressure: each peer may have at most `max_inbox_messages` messages / `max_inbox_bytes` bytes handed
to the runtime and not yet consumed (the runtime calls `Transport.consumed(peer)` once per `on_messages` call it
has stepped). A frame that would exceed the bound is held in its connection and that peer's socket stops being
read until the runtime has drained the peer's inbox below half the bound: the pressure lands on the sender's TCP
window and send queue, never on this node's memory, and other peers (their own sockets) are not slowed at all.

Robustness: a frame over `max_frame_bytes` closes the connection (the stream cannot be resynchronised past an
unread body); a frame that does not decode, or a message that fails `check_message`, is dropped with a log line
and the connection stays up. Nothing a peer sends can raise out of the transport.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ddx_offchain.raft.certs import certificate_fingerprint
from ddx_offchain.raft.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_SNAPSHOT_BYTES,
    LENGTH_PREFIX_BYTES,
    CodecError,
    MessageBatch,
    SnapshotAssembler,
    SnapshotChunk,
    check_message,
    decode_frame_payload,
    encode_frame_payload,
    encode_message,
    frame_bytes,
    split_into_chunks,
)
from ddx_offchain.raft.messages import Message

log = logging.getLogger("ddx.raft.transport")


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """This operator's certificate and key, and every operator's pinned certificate (PEM)."""

    cert_pem: bytes
    key_pem: bytes
    pinned: dict[int, bytes]  # node id -> certificate PEM, for every operator (self included is fine)


@dataclass(frozen=True, slots=True)
class TransportConfig:
    node_id: int
    listen_host: str
    listen_port: int  # 0 picks a free port; see Transport.port
    peers: dict[int, tuple[str, int]]  # node id -> (host, port) of every other operator
    tls: TlsMaterial
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES
    snapshot_chunk_bytes: int = 1 << 20
    # Messages buffered per peer while its connection is down; beyond that the oldest are dropped (Raft
    # retransmits) and the peer is reported unreachable.
    max_queued_messages: int = 16384
    # Received messages from one peer not yet consumed by the runtime; beyond either bound that peer's socket
    # is paused (see the module docstring). A single frame larger than the bound is still accepted alone.
    max_inbox_messages: int = 16384
    max_inbox_bytes: int = 64 << 20
    reconnect_min_seconds: float = 0.02
    reconnect_max_seconds: float = 1.0
    handshake_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_inbox_messages < 1 or self.max_inbox_bytes < 1:
            raise ValueError("max_inbox_messages and max_inbox_bytes must be positive")


@dataclass(slots=True)
class TransportHandler:
    """Callbacks into the runtime; all run on the event loop."""

    on_messages: Callable[[int, list[Message]], None]
    on_unreachable: Callable[[int], None] = lambda peer: None
    on_snapshot_sent: Callable[[int, bool], None] = lambda peer, ok: None


@dataclass(slots=True)
class TransportStats:
    frames_received: int = 0
    frames_dropped: int = 0
    connections_refused: int = 0
    messages_dropped_on_send: int = 0
    inbox_pauses: int = 0  # times a peer's socket was paused because its inbox reached the bound
    inbox_overflows: int = 0  # connections closed because a paused peer kept sending past the read buffer
    dropped_reasons: collections.Counter = field(default_factory=collections.Counter)


def _pem_bundle_context(purpose: ssl.Purpose, tls: TlsMaterial, trusted: list[bytes]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # identity is the pinned certificate, not a host name
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata="".join(pem.decode() for pem in trusted))
    # load_cert_chain only takes paths; the key lives in a private temporary file for the call only.
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(tls.cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(tls.key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


class Transport:
    def __init__(self, config: TransportConfig, handler: TransportHandler) -> None:
        self.config = config
        self.handler = handler
        self.stats = TransportStats()
        self._fingerprints = {certificate_fingerprint(pem): node for node, pem in config.tls.pinned.items()}
        self._server_context = _pem_bundle_context(ssl.Purpose.CLIENT_AUTH, config.tls, list(config.tls.pinned.values()))
        self._links: dict[int, _PeerLink] = {}
        self._listener: socket.socket | None = None
        self._inbound: set[asyncio.Task] = set()
        self._connections: set[_InboundConnection] = set()
        self._closed = False
        # Per peer: (messages, bytes) of each on_messages call not yet consumed, oldest first, and the totals.
        self._undelivered: dict[int, collections.deque[tuple[int, int]]] = {}
        self._inbox_load: dict[int, list[int]] = {}
        self._paused: dict[int, set[_InboundConnection]] = {}
        self.port = config.listen_port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server((self.config.listen_host, self.config.listen_port), reuse_port=False)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop(listener))
        for node_id, address in self.config.peers.items():
            self.add_peer(node_id, address)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._inbound.add(task)
        task.add_done_callback(self._inbound.discard)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                sock, remote = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.error("node %d: accept failed: %r", self.config.node_id, exc)
                await asyncio.sleep(0.1)
                continue
            _no_delay(sock)
            self._spawn(self._handshake(sock, remote))

    async def _handshake(self, sock: socket.socket, remote) -> None:
        """TLS handshake on an accepted socket; a failure is logged here (a TLS server in asyncio or uvloop
        would drop it silently). The connection's protocol identifies the peer once the handshake is done."""
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _InboundConnection(self, remote), sock, ssl=self._server_context,
                ssl_handshake_timeout=self.config.handshake_timeout_seconds,
            )
        except (ssl.SSLError, OSError, ConnectionError, asyncio.TimeoutError) as exc:
            self.stats.connections_refused += 1
            log.warning("node %d: refused connection from %s: TLS handshake failed (%r)", self.config.node_id, remote, exc)
            sock.close()

    def add_peer(self, node_id: int, address: tuple[str, int]) -> None:
        if node_id == self.config.node_id or node_id in self._links:
            return
        pem = self.config.tls.pinned.get(node_id)
        if pem is None:
            raise ValueError(f"no pinned certificate for node {node_id}")
        context = _pem_bundle_context(ssl.Purpose.SERVER_AUTH, self.config.tls, [pem])
        self._links[node_id] = _PeerLink(self, node_id, address, context, certificate_fingerprint(pem))

    def remove_peer(self, node_id: int) -> None:
        link = self._links.pop(node_id, None)
        if link is not None:
            link.close()

    def send(self, messages: list[Message]) -> None:
        """Queue messages for their destinations; never blocks, never raises for an unknown peer (logged)."""
        for message in messages:
            link = self._links.get(message.to)
            if link is None:
                log.warning("node %d: dropping %s to unknown peer %d", self.config.node_id, message.type.name, message.to)
                continue
            link.enqueue(message)

    def consumed(self, peer: int) -> None:
        """The runtime has stepped the oldest unconsumed `on_messages` batch from `peer`: release its share of
        the peer's inbox bound, and resume the peer's socket once the inbox is below half of it."""
        pending = self._undelivered.get(peer)
        if not pending:
            return
        count, size = pending.popleft()
        load = self._inbox_load[peer]
        load[0] -= count
        load[1] -= size
        paused = self._paused.get(peer)
        if paused and load[0] <= self.config.max_inbox_messages // 2 and load[1] <= self.config.max_inbox_bytes // 2:
            connections = list(paused)
            paused.clear()
            loop = asyncio.get_running_loop()
            for connection in connections:
                loop.call_soon(connection.resume)  # not re-entrant: the runtime is mid-way through its inbox

    def inbox_load(self, peer: int) -> tuple[int, int]:
        """(messages, bytes) received from `peer` and not yet consumed."""
        load = self._inbox_load.get(peer)
        return (load[0], load[1]) if load else (0, 0)

    def connected_peers(self) -> list[int]:
        return sorted(node for node, link in self._links.items() if link.connected)

    async def close(self) -> None:
        self._closed = True
        for link in self._links.values():
            link.close()
        if self._listener is not None:
            self._listener.close()
        for task in list(self._inbound):
            task.cancel()
        for connection in list(self._connections):
            connection.abort()
        await asyncio.gather(*(link.task for link in self._links.values()), *self._inbound, return_exceptions=True)
        self._links.clear()

    # --- inbound (called by _InboundConnection) ------------------------------------------------------------------
    def _identify(self, der: bytes | None) -> int | None:
        peer = self._fingerprints.get(certificate_fingerprint(der)) if der else None
        return None if peer == self.config.node_id else peer

    def _decode(self, peer: int, payload: bytes, assembler: SnapshotAssembler) -> tuple[list[Message], int]:
        """Decode and check one frame: the messages to deliver and the bytes they hold."""
        self.stats.frames_received += 1
        try:
            frame = decode_frame_payload(payload)
            if isinstance(frame, SnapshotChunk):
                message = assembler.add(frame)
                candidates: tuple[Message, ...] = (message,) if message is not None else ()
                size = len(message.snapshot.data) if message is not None and message.snapshot is not None else 0
            else:
                candidates = frame.messages
                size = len(payload)
        except CodecError as exc:
            self._drop(peer, "malformed", str(exc))
            return [], 0
        me = self.config.node_id
        accepted: list[Message] = []
        for message in candidates:
            try:
                check_message(message, sender=peer, receiver=me)
            except CodecError as exc:
                self._drop(peer, "invalid", str(exc))
                continue
            accepted.append(message)
        return accepted, size

    def _has_room(self, peer: int, count: int, size: int) -> bool:
        load = self._inbox_load.get(peer)
        if not load or (load[0] == 0 and load[1] == 0):
            return True  # an empty inbox takes any one frame, so a frame bigger than the bound cannot wedge
        return load[0] + count <= self.config.max_inbox_messages and load[1] + size <= self.config.max_inbox_bytes

    def _hand_over(self, peer: int, messages: list[Message], size: int) -> None:
        self._undelivered.setdefault(peer, collections.deque()).append((len(messages), size))
        load = self._inbox_load.setdefault(peer, [0, 0])
        load[0] += len(messages)
        load[1] += size
        try:
            self.handler.on_messages(peer, messages)
        except Exception:  # the runtime's bug must not look like the peer's fault, nor kill the connection
            log.exception("node %d: handler failed on messages from %d", self.config.node_id, peer)

    def _pause(self, peer: int, connection: _InboundConnection) -> None:
        self.stats.inbox_pauses += 1
        self._paused.setdefault(peer, set()).add(connection)
        if self.stats.inbox_pauses & (self.stats.inbox_pauses - 1) == 0:  # 1st, 2nd, 4th, 8th...: rate-limited
            load = self._inbox_load.get(peer, [0, 0])
            log.warning("node %d: inbox from node %d full (%d messages, %d bytes): pausing its socket (%d pauses)",
                        self.config.node_id, peer, load[0], load[1], self.stats.inbox_pauses)

    def _drop(self, peer: int, reason: str, detail: str) -> None:
        self.stats.frames_dropped += 1
        self.stats.dropped_reasons[reason] += 1
        log.warning("node %d: dropped %s frame from node %d: %s", self.config.node_id, reason, peer, detail)


def _no_delay(sock) -> None:
    """Disable Nagle: a frame must leave now, not when the previous one is acknowledged (Nagle plus delayed
    acknowledgements add up to 40 ms to a small write). Not every event loop sets it for us."""
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _InboundConnection(asyncio.Protocol):
    """One authenticated inbound connection (the TLS handshake is already done): identify the peer by its
    certificate, then parse frames in data_received."""

    def __init__(self, transport: Transport, remote) -> None:
        self.owner = transport
        self.remote = remote
        self.peer: int | None = None
        self.tls: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.assembler = SnapshotAssembler(transport.config.max_snapshot_bytes)
        # A decoded frame waiting for room in the peer's inbox (the socket is paused meanwhile).
        self.held: tuple[list[Message], int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        owner = self.owner
        self.tls = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        self.peer = owner._identify(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
        if self.peer is None or owner._closed:
            if self.peer is None:
                owner.stats.connections_refused += 1
                log.warning("node %d: refused connection from %s: certificate is not a pinned peer",
                            owner.config.node_id, self.remote)
            transport.close()
            return
        owner._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            return
        self.buffer += data
        if self.held is not None:
            # Paused, but TLS may still hand over what it had already read; beyond one more frame the peer is
            # ignoring TCP flow control (nothing honest can), so the connection goes: Raft retransmits.
            if len(self.buffer) > self.owner.config.max_frame_bytes + (1 << 20) and self.tls is not None:
                self.owner.stats.inbox_overflows += 1
                self.owner._drop(self.peer, "overflow", "kept sending while paused; closing the connection")
                self.buffer.clear()
                self.tls.close()
            return
        self._parse()

    def resume(self) -> None:
        """The peer's inbox has room again: deliver the held frame, parse what is buffered, read again."""
        if self.peer is None or self.tls is None or self.tls.is_closing():
            return
        held, self.held = self.held, None
        if held is not None:
            owner = self.owner
            if not owner._has_room(self.peer, len(held[0]), held[1]):
                self.held = held
                owner._pause(self.peer, self)
                return
            owner._hand_over(self.peer, *held)
        self._parse()
        if self.held is None:
            self.tls.resume_reading()

    def _parse(self) -> None:
        buffer = self.buffer
        owner = self.owner
        assert self.peer is not None and self.tls is not None
        limit = owner.config.max_frame_bytes
        offset = 0
        size = len(buffer)
        while self.held is None and size - offset >= LENGTH_PREFIX_BYTES:
            length = int.from_bytes(buffer[offset : offset + LENGTH_PREFIX_BYTES], "big")
            if length == 0 or length > limit:
                owner._drop(self.peer, "oversized", f"frame of {length} bytes (max {limit}); closing the connection")
                buffer.clear()
                self.tls.close()
                return
            end = offset + LENGTH_PREFIX_BYTES + length
            if end > size:
                break
            messages, nbytes = owner._decode(self.peer, bytes(buffer[offset + LENGTH_PREFIX_BYTES : end]), self.assembler)
            offset = end
            if not messages:
                continue
            if owner._has_room(self.peer, len(messages), nbytes):
                owner._hand_over(self.peer, messages, nbytes)
            else:
                self.held = (messages, nbytes)
                self.tls.pause_reading()
                owner._pause(self.peer, self)
        if offset:
            del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        self.buffer.clear()
        self.held = None
        self.owner._connections.discard(self)
        if self.peer is not None:
            self.owner._paused.get(self.peer, set()).discard(self)

    def abort(self) -> None:
        if self.tls is not None:
            self.tls.abort()


class _PeerLink:
    """The outbound connection to one peer: a bounded queue drained by one writer task."""

    _transfer_ids = itertools.count(1)

    def __init__(self, transport: Transport, peer: int, address: tuple[str, int], context: ssl.SSLContext, fingerprint: str) -> None:
        self.transport = transport
        self.peer = peer
        self.address = address
        self.context = context
        self.fingerprint = fingerprint
        self.queue: collections.deque[Message] = collections.deque()
        self.wakeup = asyncio.Event()
        self.connected = False
        self._closing = False
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"raft-link-{peer}")

    def enqueue(self, message: Message) -> None:
        config = self.transport.config
        if len(self.queue) >= config.max_queued_messages:
            dropped = self.queue.popleft()
            self.transport.stats.messages_dropped_on_send += 1
            if dropped.snapshot is not None:
                self.transport.handler.on_snapshot_sent(self.peer, False)
            self.transport.handler.on_unreachable(self.peer)
        self.queue.append(message)
        self.wakeup.set()

    def close(self) -> None:
        self._closing = True
        self.task.cancel()

    async def _run(self) -> None:
        config = self.transport.config
        delay = config.reconnect_min_seconds
        while not self._closing:
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.address, ssl=self.context, server_hostname=None),
                    timeout=config.handshake_timeout_seconds,
                )
                _no_delay(writer.get_extra_info("socket"))
                der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                if not der or certificate_fingerprint(der) != self.fingerprint:
                    raise ssl.SSLError(f"node {self.peer} presented an unpinned certificate")
                self.connected = True
                delay = config.reconnect_min_seconds
                await self._pump_until_closed(reader, writer)
            except asyncio.CancelledError:
                raise
            except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
                if self.connected:
                    log.info("node %d: connection to %d lost: %r", config.node_id, self.peer, exc)
                else:
                    log.debug("node %d: cannot reach %d: %r", config.node_id, self.peer, exc)
                self._fail_pending()
            finally:
                self.connected = False
                if writer is not None:
                    writer.close()
            # Full jitter keeps restarted nodes from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(config.reconnect_min_seconds, delay))
            delay = min(delay * 2, config.reconnect_max_seconds)

    def _fail_pending(self) -> None:
        """While the peer is unreachable, queued messages are stale; Raft retransmits what still matters."""
        had_messages = bool(self.queue)
        for message in self.queue:
            if message.snapshot is not None:
                self.transport.handler.on_snapshot_sent(self.peer, False)
        self.transport.stats.messages_dropped_on_send += len(self.queue)
        self.queue.clear()
        if had_messages:
            self.transport.handler.on_unreachable(self.peer)

    async def _pump_until_closed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send until the connection fails. The listener never sends anything, so a completed read means the
        peer closed (restarted, or dropped us): notice it now, not at the next write that would be lost."""
        pump = asyncio.ensure_future(self._pump(writer))
        closed = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({pump, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, closed):
                task.cancel()
            await asyncio.gather(pump, closed, return_exceptions=True)
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            raise pump.exception()  # type: ignore[misc]
        raise ConnectionResetError(f"node {self.peer} closed the connection")

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        config = self.transport.config
        while True:
            if not self.queue:
                self.wakeup.clear()
                await self.wakeup.wait()
            batch = list(self.queue)
            self.queue.clear()
            for payload in self._frames(batch):
                writer.write(frame_bytes(payload, config.max_frame_bytes))
            await writer.drain()
            snapshots_sent = sum(1 for message in batch if message.snapshot is not None)
            for _ in range(snapshots_sent):
                self.transport.handler.on_snapshot_sent(self.peer, True)

    def _frames(self, batch: list[Message]) -> list[bytes]:
        """Pack messages into as few frames as fit; a snapshot too big for one frame goes out in chunks."""
        config = self.transport.config
        whole = encode_frame_payload(MessageBatch(tuple(batch)))
        if len(whole) <= config.max_frame_bytes:
            return [whole]
        frames: list[bytes] = []
        group: list[Message] = []
        group_bytes = 0
        budget = config.max_frame_bytes - 64  # array and tag overhead of MessageBatch
        for message in batch:
            encoded = encode_message(message)
            if len(encoded) > budget:
                if message.snapshot is None:
                    log.error("node %d: message of %d bytes to %d exceeds the frame limit; dropped",
                              config.node_id, len(encoded), self.peer)
                    continue
                if group:
                    frames.append(encode_frame_payload(MessageBatch(tuple(group))))
                    group, group_bytes = [], 0
                chunk_bytes = min(config.snapshot_chunk_bytes, budget - 64)
                for chunk in split_into_chunks(next(self._transfer_ids), encoded, chunk_bytes):
                    frames.append(encode_frame_payload(chunk))
                continue
            if group_bytes + len(encoded) > budget:
                frames.append(encode_frame_payload(MessageBatch(tuple(group))))
                group, group_bytes = [], 0
            group.append(message)
            group_bytes += len(encoded)
        if group:
            frames.append(encode_frame_payload(MessageBatch(tuple(group))))
        return frames
