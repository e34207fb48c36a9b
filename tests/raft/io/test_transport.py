"""Peer transport: mutual TLS with pinned certificates, bounded frames, dropped garbage, reconnects, chunking."""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct

import pytest

from ddx_offchain.raft.certs import generate_operator_certificate
from ddx_offchain.raft.codec import MessageBatch, encode_frame_payload, frame_bytes
from ddx_offchain.raft.messages import Entry, Message, MessageType, Snapshot, SnapshotMetadata
from ddx_offchain.raft.transport import TlsMaterial, Transport, TransportConfig, TransportHandler
from ddx_offchain.testing.raft_cluster.localcluster import free_port

CERTS = {node: generate_operator_certificate(f"op{node}") for node in (1, 2, 3)}
PINNED = {node: cert.cert_pem for node, cert in CERTS.items()}
STRANGER = generate_operator_certificate("not-an-operator")


def heartbeat(sender: int = 1, receiver: int = 2, term: int = 1) -> Message:
    return Message(MessageType.HEARTBEAT, to=receiver, from_=sender, term=term)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[int, Message]] = []
        self.unreachable: list[int] = []
        self.snapshots: list[tuple[int, bool]] = []

    def handler(self) -> TransportHandler:
        return TransportHandler(
            on_messages=lambda peer, messages: self.messages.extend((peer, m) for m in messages),
            on_unreachable=self.unreachable.append,
            on_snapshot_sent=lambda peer, ok: self.snapshots.append((peer, ok)),
        )

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        for _ in range(int(timeout / 0.01)):
            if len(self.messages) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"got {len(self.messages)} messages, expected {count}")


def transport(node: int, inbox: Inbox, peers: dict[int, int] | None = None, *, port: int = 0,
              identity=None, pinned=None, **knobs) -> Transport:
    identity = identity or CERTS[node]
    config = TransportConfig(
        node_id=node, listen_host="127.0.0.1", listen_port=port,
        peers={peer: ("127.0.0.1", peer_port) for peer, peer_port in (peers or {}).items()},
        tls=TlsMaterial(identity.cert_pem, identity.key_pem, pinned or PINNED),
        reconnect_min_seconds=0.01, reconnect_max_seconds=0.05, **knobs,
    )
    return Transport(config, inbox.handler())


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_pinned_peers_exchange_messages() -> None:
    async def scenario() -> None:
        inbox2 = Inbox()
        receiver = transport(2, inbox2)
        await receiver.start()
        sender = transport(1, Inbox(), {2: receiver.port})
        await sender.start()
        sender.send([heartbeat(term=t) for t in range(1, 101)])
        await inbox2.wait_for(100)
        assert [m.term for _, m in inbox2.messages] == list(range(1, 101)), "in order, exactly once"
        assert {peer for peer, _ in inbox2.messages} == {1}
        await sender.close()
        await receiver.close()

    run(scenario())


def test_unconfigured_process_cannot_connect_or_inject(caplog) -> None:
    async def scenario() -> None:
        inbox2 = Inbox()
        receiver = transport(2, inbox2)
        await receiver.start()
        # A process holding a key that is not one of the pinned operators (it even claims to be node 1).
        impostor = transport(1, Inbox(), {2: receiver.port}, identity=STRANGER,
                             pinned={**PINNED, 1: STRANGER.cert_pem})
        await impostor.start()
        impostor.send([heartbeat()])
        # And a plain TCP client that skips TLS altogether.
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        writer.write(frame_bytes(encode_frame_payload(MessageBatch((heartbeat(),)))))
        await writer.drain()
        for _ in range(300):
            if receiver.stats.connections_refused >= 2:
                break
            await asyncio.sleep(0.01)
        assert receiver.stats.connections_refused >= 2
        assert inbox2.messages == []
        writer.close()
        await impostor.close()
        await receiver.close()

    with caplog.at_level(logging.WARNING, logger="ddx.raft.transport"):
        run(scenario())
    assert "refused connection" in caplog.text


def test_dialer_refuses_a_listener_with_the_wrong_certificate() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        # Something listens on node 2's address with node 3's certificate (e.g. a misrouted port).
        wrong = transport(3, Inbox(), pinned=PINNED)
        await wrong.start()
        sender = transport(1, inbox, {2: wrong.port})
        await sender.start()
        sender.send([heartbeat()])
        await asyncio.sleep(0.5)
        assert sender.connected_peers() == []
        assert inbox.unreachable and inbox.unreachable[0] == 2
        await sender.close()
        await wrong.close()

    run(scenario())


async def raw_tls_connection(port: int, identity) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    from ddx_offchain.raft.transport import _pem_bundle_context

    context = _pem_bundle_context(ssl.Purpose.SERVER_AUTH, TlsMaterial(identity.cert_pem, identity.key_pem, PINNED),
                                  [PINNED[2]])
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=None)


def test_malformed_and_forged_frames_are_dropped_and_the_connection_survives(caplog) -> None:
    async def scenario() -> None:
        inbox2 = Inbox()
        receiver = transport(2, inbox2)
        await receiver.start()
        reader, writer = await raw_tls_connection(receiver.port, CERTS[1])
        writer.write(frame_bytes(b"\xc1garbage"))  # not msgpack
        writer.write(frame_bytes(encode_frame_payload(MessageBatch((heartbeat(sender=3),)))))  # speaks for node 3
        writer.write(frame_bytes(encode_frame_payload(MessageBatch((Message(MessageType.HUP, to=2, from_=1),)))))
        writer.write(frame_bytes(encode_frame_payload(MessageBatch((heartbeat(term=7),)))))  # and a good one
        await writer.drain()
        await inbox2.wait_for(1)
        assert [m.term for _, m in inbox2.messages] == [7]
        assert receiver.stats.dropped_reasons == {"malformed": 1, "invalid": 2}
        writer.close()
        await receiver.close()

    with caplog.at_level(logging.WARNING, logger="ddx.raft.transport"):
        run(scenario())
    assert "dropped malformed frame from node 1" in caplog.text


def test_oversized_frame_closes_the_connection_and_the_node_keeps_serving() -> None:
    async def scenario() -> None:
        inbox2 = Inbox()
        receiver = transport(2, inbox2, max_frame_bytes=4096)
        await receiver.start()
        reader, writer = await raw_tls_connection(receiver.port, CERTS[1])
        writer.write(struct.pack(">I", 1 << 30) + b"x" * 100)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b"", "the receiver hung up"
        assert receiver.stats.dropped_reasons == {"oversized": 1}
        sender = transport(1, Inbox(), {2: receiver.port}, max_frame_bytes=4096)
        await sender.start()
        sender.send([heartbeat(term=9)])
        await inbox2.wait_for(1)
        await sender.close()
        await receiver.close()

    run(scenario())


def test_reconnects_after_the_peer_restarts() -> None:
    async def scenario() -> None:
        inbox2 = Inbox()
        port = free_port()  # below the ephemeral range, so nothing else takes it while the receiver is down
        receiver = transport(2, inbox2, port=port)
        await receiver.start()
        sender = transport(1, Inbox(), {2: port})
        await sender.start()
        sender.send([heartbeat(term=1)])
        await inbox2.wait_for(1)
        await receiver.close()
        await asyncio.sleep(0.1)
        # Sent while the peer is down: delivered if still queued at reconnect, else dropped and reported.
        sender.send([heartbeat(term=2)])
        restarted = transport(2, inbox2, port=port)
        await restarted.start()
        for _ in range(200):
            if sender.connected_peers() == [2]:
                break
            await asyncio.sleep(0.01)
        sender.send([heartbeat(term=3)])
        for _ in range(500):
            if any(m.term == 3 for _, m in inbox2.messages):
                break
            await asyncio.sleep(0.01)
        terms = [m.term for _, m in inbox2.messages]
        assert terms[0] == 1 and terms[-1] == 3 and terms == sorted(set(terms)), terms
        await sender.close()
        await restarted.close()

    run(scenario())


def test_big_snapshot_goes_out_in_chunks_and_is_reported() -> None:
    async def scenario() -> None:
        inbox2 = Inbox()
        receiver = transport(2, inbox2, max_frame_bytes=64 * 1024)
        await receiver.start()
        inbox1 = Inbox()
        sender = transport(1, inbox1, {2: receiver.port}, max_frame_bytes=64 * 1024, snapshot_chunk_bytes=16 * 1024)
        await sender.start()
        image = bytes(range(256)) * 4096  # 1 MiB: sixteen times the frame limit
        snapshot = Message(MessageType.SNAPSHOT, to=2, from_=1, term=3,
                           snapshot=Snapshot(SnapshotMetadata(index=100, term=3), image))
        append = Message(MessageType.APPEND, to=2, from_=1, term=3, index=100, log_term=3,
                         entries=(Entry(3, 101, data=b"after"),))
        sender.send([snapshot, append])
        await inbox2.wait_for(2)
        assert inbox2.messages[0][1] == snapshot and inbox2.messages[1][1] == append
        assert inbox1.snapshots == [(2, True)]
        assert receiver.stats.frames_received > 16
        await sender.close()
        await receiver.close()

    run(scenario())


@pytest.mark.parametrize("queue_limit", [3])
def test_send_queue_is_bounded(queue_limit: int) -> None:
    async def scenario() -> None:
        inbox1 = Inbox()
        # Nobody listens on the peer's port: messages pile up, the oldest are dropped, the peer is unreachable.
        sender = transport(1, inbox1, {2: 1}, max_queued_messages=queue_limit)
        await sender.start()
        sender.send([heartbeat(term=t) for t in range(10)])
        assert len(sender._links[2].queue) <= queue_limit
        assert sender.stats.messages_dropped_on_send >= 10 - queue_limit
        assert 2 in inbox1.unreachable
        await sender.close()

    run(scenario())
