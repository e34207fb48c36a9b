"""The node over the real Raft runtime: three operators in one event loop on loopback TLS (the process-level
cluster tests live in tests/node/test_cluster.py). Receipts only after quorum commit; same state on every node."""

from __future__ import annotations

import asyncio
import socket

from fakes import RecordingEngine
from test_state_machine import KEY, T0

from ddx_offchain.node.operator import OperatorNode
from ddx_offchain.node.raft_sequencer import RaftSequencer
from ddx_offchain.protocol.eip712 import Domain, address_of
from ddx_offchain.protocol.requests import (
    PlaceOrder,
    SignedReceipt,
    market_id,
    sign_request,
    strategy_id,
    verify_receipt,
)
from ddx_offchain.raft.certs import generate_operator_certificate
from ddx_offchain.raft.runtime import NodeConfig, RaftNode
from ddx_offchain.raft.transport import TlsMaterial

DOMAIN = Domain.of(31337, "0x" + "5a" * 20)


def signed_json(nonce: int) -> dict:
    request = PlaceOrder(address_of(KEY), strategy_id("main"), market_id("ETHP"), 0, 0, 100, 1, False, nonce, T0)
    return sign_request(request, DOMAIN, KEY).to_json()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def start_cluster(tmp_path, n=3):
    certs = {i: generate_operator_certificate(f"op{i}") for i in range(1, n + 1)}
    ports = dict(zip(range(1, n + 1), free_ports(n)))
    nodes = []
    for i in range(1, n + 1):
        engine = RecordingEngine()
        node = OperatorNode(node_id=i, domain=DOMAIN, operator_key=bytes([i]) * 32, engine=engine, view=engine, history_path=None)
        config = NodeConfig(
            node_id=i,
            data_dir=tmp_path / f"raft{i}",
            listen=("127.0.0.1", ports[i]),
            peers={j: ("127.0.0.1", ports[j]) for j in ports if j != i},
            tls=TlsMaterial(certs[i].cert_pem, certs[i].key_pem, {j: c.cert_pem for j, c in certs.items()}),
            tick_seconds=0.02,
        )
        raft = RaftNode(config, node.service)
        node.attach(RaftSequencer(raft))
        await raft.start()
        nodes.append((node, raft))
    for _ in range(300):
        if any(n.sequencer.is_leader() for n, _ in nodes) and all(n.sequencer.leader_id() for n, _ in nodes):
            break
        await asyncio.sleep(0.02)
    return nodes


def test_receipts_after_quorum_commit_and_identical_state(tmp_path):
    async def scenario():
        nodes = await start_cluster(tmp_path)
        try:
            follower = next(n for n, _ in nodes if not n.sequencer.is_leader())
            bodies = [signed_json(k) for k in range(1, 21)]
            follower.service.admission._now_ms = lambda: T0  # the requests carry the fixed test timestamp
            records = await asyncio.gather(*(follower.service.submit(b) for b in bodies))
            operator = address_of(bytes([follower.node_id]) * 32)
            for record in records:
                signed = SignedReceipt.from_json(follower.service.receipt_json(record))
                assert verify_receipt(signed, DOMAIN, {operator}) == operator
            assert sorted(r.request_index for r in records) == list(range(1, 21))
            for _ in range(200):
                if len({n.engine.state_root() for n, _ in nodes}) == 1 and all(len(n.engine.executed) == 20 for n, _ in nodes):
                    break
                await asyncio.sleep(0.02)
            assert len({n.engine.state_root() for n, _ in nodes}) == 1
            assert all(len(n.engine.executed) == 20 for n, _ in nodes)
            status = follower.status()
            assert status["raft"]["role"] == "follower" and status["raft"]["leader"] is not None
            assert status["raft"]["fsyncs"] > 0 and status["raft"]["fsyncSecondsTotal"] > 0
            metrics = follower.metrics.render().decode()
            fsync_line = next(line for line in metrics.splitlines() if line.startswith("ddx_raft_fsync_seconds_total "))
            assert float(fsync_line.split()[1]) >= status["raft"]["fsyncSecondsTotal"] > 0  # the disk thread may add more
        finally:
            for _, raft in nodes:
                await raft.shutdown()

    asyncio.run(scenario())
