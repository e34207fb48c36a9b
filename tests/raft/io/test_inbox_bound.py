"""Inbound back-pressure: an authenticated peer that floods frames cannot grow a node's inbox past its bound."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from ddx_offchain.raft.codec import MessageBatch, encode_frame_payload, frame_bytes
from ddx_offchain.raft.messages import Message, MessageType
from ddx_offchain.raft.transport import TlsMaterial, _InboundConnection, _pem_bundle_context

from . import test_runtime, test_transport
from .test_runtime import Cluster
from .test_transport import Inbox, transport

FRAME_MESSAGES = 50


def stale_responses(sender: int, receiver: int, first: int) -> list[Message]:
    """Heartbeat responses of an old term: valid on the wire, ignored by Raft (so flooding changes no state)."""
    return [Message(MessageType.HEARTBEAT_RESP, to=receiver, from_=sender, term=1, index=first + k)
            for k in range(FRAME_MESSAGES)]


async def dial_as(
    sender: int, receiver: int, port: int, operators=test_transport
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw authenticated connection with `sender`'s operator certificate (from `operators`' test identities)."""
    identity, pinned = operators.CERTS[sender], operators.PINNED
    context = _pem_bundle_context(ssl.Purpose.SERVER_AUTH, TlsMaterial(identity.cert_pem, identity.key_pem, pinned),
                                  [pinned[receiver]])
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=None)


def test_unconsumed_inbox_pauses_the_peer_and_resumes_without_loss() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        receiver = transport(2, inbox, max_inbox_messages=120, max_inbox_bytes=1 << 20)
        await receiver.start()
        _, writer = await dial_as(1, 2, receiver.port)
        total = 40 * FRAME_MESSAGES
        for frame in range(40):
            batch = MessageBatch(tuple(stale_responses(1, 2, frame * FRAME_MESSAGES)))
            writer.write(frame_bytes(encode_frame_payload(batch)))
        await writer.drain()
        await asyncio.sleep(0.3)
        # Nobody consumes: the inbox stops at the bound (whole frames: 2 x 50 <= 120 < 3 x 50).
        assert len(inbox.messages) == 100 and receiver.inbox_load(1)[0] == 100
        assert receiver.stats.inbox_pauses >= 1
        for _ in range(500):
            while receiver.inbox_load(1)[0]:  # the runtime's part: one consumed() per stepped hand-over
                receiver.consumed(1)
            await asyncio.sleep(0.005)
            assert receiver.inbox_load(1)[0] <= 120
            if len(inbox.messages) == total:
                break
        # Back-pressure loses nothing: every message arrives, in order.
        assert [m.index for _, m in inbox.messages] == list(range(total))
        writer.close()
        await receiver.close()

    asyncio.run(scenario())


def test_bytes_bound_holds_too() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        frame = frame_bytes(encode_frame_payload(MessageBatch(tuple(stale_responses(1, 2, 0)))))
        receiver = transport(2, inbox, max_inbox_bytes=3 * len(frame))
        await receiver.start()
        _, writer = await dial_as(1, 2, receiver.port)
        for _ in range(20):
            writer.write(frame)
        await writer.drain()
        await asyncio.sleep(0.3)
        assert len(inbox.messages) == 3 * FRAME_MESSAGES and receiver.stats.inbox_pauses >= 1
        writer.close()
        await receiver.close()

    asyncio.run(scenario())


def test_flooding_peer_cannot_grow_the_inbox_and_the_cluster_still_commits(tmp_path: Path) -> None:
    bound = 200

    async def main() -> None:
        cluster = Cluster(tmp_path, max_inbox_messages=bound, max_inbox_bytes=64 << 10)
        try:
            await cluster.start(1)
            await cluster.start(2)  # node 3 stays down; its certificate is the flooder's
            victim = cluster.nodes[1]
            peak = [0, 0]
            link = victim._transport
            deliver = link.handler.on_messages

            def measured(peer: int, messages: list[Message]) -> None:
                deliver(peer, messages)
                queued = sum(len(batch) for sender, batch in victim._inbox if sender == 3)
                peak[0] = max(peak[0], queued)
                peak[1] = max(peak[1], link.inbox_load(3)[1])

            link.handler.on_messages = measured
            stop = asyncio.Event()

            async def flood() -> None:
                _, writer = await dial_as(3, 1, victim.port, test_runtime)
                sent = 0
                while not stop.is_set():
                    for _ in range(20):
                        batch = MessageBatch(tuple(stale_responses(3, 1, sent)))
                        writer.write(frame_bytes(encode_frame_payload(batch)))
                        sent += FRAME_MESSAGES
                    await writer.drain()
                writer.close()

            flooder = asyncio.get_running_loop().create_task(flood())
            leader = await cluster.leader()
            results = await asyncio.gather(*(leader.propose(b"p%d" % i) for i in range(200)))
            await cluster.converge(results[-1].index)
            await asyncio.sleep(0.2)
            stop.set()
            await flooder
            status = victim.status()
            assert status.inbox_pauses > 0, "the flood never reached the bound: the test proves nothing"
            assert peak[0] <= bound and peak[1] <= 64 << 10
            assert status.inbox_overflows == 0, "pause_reading held: the flooder was throttled, not disconnected"
            assert status.role in ("LEADER", "FOLLOWER") and status.leader in (1, 2)
        finally:
            await cluster.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_peer_sending_past_the_pause_is_disconnected() -> None:
    """TLS may still hand over what it had read when the socket was paused; a peer that pushes more than a frame
    beyond that is ignoring flow control, and its connection is closed instead of buffered."""
    class FakeTls:
        closed = False

        def close(self) -> None:
            self.closed = True

    async def scenario() -> None:
        receiver = transport(2, Inbox(), max_frame_bytes=1024)
        connection = _InboundConnection(receiver, ("127.0.0.1", 1))
        connection.peer, connection.tls = 1, FakeTls()
        connection.held = ([], 0)  # paused, a frame waiting for room
        connection.data_received(b"\x00" * (1 << 20))
        assert not connection.tls.closed and receiver.stats.inbox_overflows == 0
        connection.data_received(b"\x00" * 2048)
        assert connection.tls.closed and receiver.stats.inbox_overflows == 1 and not connection.buffer

    asyncio.run(scenario())


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        transport(2, Inbox(), max_inbox_messages=0)
