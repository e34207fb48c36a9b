"""The checkpointer's relay loop against an in-memory chain: stuck transactions replaced with bumped fees on the same
nonce, reverted transactions retried, a recording by another relayer noticed."""

from __future__ import annotations

import asyncio

from eth_account import Account

from ddx_offchain.chain.checkpointer import Checkpointer, CheckpointerConfig
from ddx_offchain.chain.core.blocks import BlockHeader
from ddx_offchain.chain.core.relay_policy import GWEI, Backoff, FeePolicy
from ddx_offchain.chain.signatures import SignatureBoard
from ddx_offchain.chain.verifier import BlockVerifier
from ddx_offchain.protocol import operator_messages as om
from ddx_offchain.protocol.hashing import keccak256
from ddx_offchain.protocol.inbox import EMPTY_INBOX

KEYS = sorted((keccak256(f"relay {i}".encode()) for i in range(3)), key=lambda k: int(Account.from_key(k).address, 16))
MEMBERS = tuple(Account.from_key(k).address for k in KEYS)
SET = om.OperatorSet(1, 3, MEMBERS)
DOMAIN = om.Domain(1, "0x" + "cd" * 20)
ROOT = b"\x42" * 32
ANCHOR = 50
ANCHOR_HASH = keccak256(b"block 50")


class MemoryChain:
    """Just enough of ChainRpc: a head, a base fee, the checkpoint registry, and a mempool we control."""

    def __init__(self) -> None:
        self.head = 100
        self.base = GWEI
        self.roots: dict[int, bytes] = {}
        self.latest = 0
        self.sent: list[dict] = []
        self.receipts: dict[bytes, tuple[int, int]] = {}
        self.nonce = 0
        self.current_set = SET

    async def block_number(self) -> int:
        return self.head

    async def headers(self, first, last):
        return [BlockHeader(n, keccak256(f"block {n}".encode()), keccak256(f"block {n - 1}".encode())) for n in range(first, last + 1)]

    async def inbox_events(self, first, last):
        return []

    async def inbox_head(self, block_number=None):
        return EMPTY_INBOX

    async def base_fee(self) -> int:
        return self.base

    async def operator_set(self) -> om.OperatorSet:
        return self.current_set

    async def checkpoint_root(self, epoch: int) -> bytes:
        return self.roots.get(epoch, b"\0" * 32)

    async def latest_epoch(self) -> int:
        return self.latest

    async def recorded_block(self, epoch, from_block):
        return self.head if epoch in self.roots else None

    async def pending_nonce(self, address: str) -> int:
        return self.nonce

    async def send_checkpoint(self, key, message, quorum, operator_set, fees, nonce, search_from=0) -> bytes:
        tx = keccak256(f"{len(self.sent)}".encode())
        self.sent.append({"hash": tx, "nonce": nonce, "fees": fees, "epoch": message.epoch, "root": message.state_root})
        return tx

    async def receipt(self, tx_hash: bytes):
        return self.receipts.get(tx_hash)

    def mine(self, tx_hash: bytes, ok: bool = True) -> None:
        self.head += 1
        self.receipts[tx_hash] = (1 if ok else 0, self.head)
        if ok:
            sent = next(s for s in self.sent if s["hash"] == tx_hash)
            self.roots[sent["epoch"]] = sent["root"]
            epoch = sent["epoch"]
            self.latest = epoch
            self.nonce += 1
        else:
            self.nonce += 1


def quorum_checkpointer(chain: MemoryChain, now: list[float]) -> Checkpointer:
    board = SignatureBoard()
    message = om.Checkpoint(1, 3, ROOT, ANCHOR, ANCHOR_HASH)  # epoch 3: relay order starts at MEMBERS[0]
    for key in KEYS[1:]:
        asyncio.run(board.publish(3, Account.from_key(key).address, om.sign(message, DOMAIN, key)))
    config = CheckpointerConfig(
        confirmations=2, relay_timeout_s=10, resubmit_after_s=30,
        fee_policy=FeePolicy(max_fee_cap=100 * GWEI, priority_fee=GWEI, bump_percent=20),
        backoff=Backoff(initial=4.0, maximum=4.0),
    )
    cp = Checkpointer(
        rpc=chain, domain=DOMAIN, operator_key=KEYS[0], operator_set=SET,
        verifier=BlockVerifier(chain, confirmations=0), exchange=board, config=config, clock=lambda: now[0],
    )
    cp.epoch_frozen(3, ROOT, ANCHOR, ANCHOR_HASH, EMPTY_INBOX)
    return cp


def test_a_stuck_transaction_is_replaced_on_the_same_nonce_with_bumped_fees():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)

    async def scenario():
        await cp.tick()
        assert len(chain.sent) == 1 and cp.progress.epochs[3].stage.value == "submitted"
        now[0] = 29.0
        await cp.tick()
        assert len(chain.sent) == 1  # still waiting for the first one
        now[0] = 31.0
        await cp.tick()
        first, second = chain.sent
        assert second["nonce"] == first["nonce"]
        assert second["fees"].max_fee_per_gas >= first["fees"].max_fee_per_gas * 120 // 100
        assert second["fees"].max_priority_fee_per_gas >= first["fees"].max_priority_fee_per_gas * 120 // 100
        chain.mine(second["hash"])
        await cp.tick()
        assert cp.progress.epochs[3].stage.value == "recorded"
        chain.head += 2
        await cp.tick()
        assert cp.progress.epochs[3].stage.value == "final"
        assert cp.status()["epochs"][-1]["txHashes"] == ["0x" + s["hash"].hex() for s in chain.sent]

    asyncio.run(scenario())


def test_a_reverted_transaction_is_reported_and_retried_with_a_fresh_nonce():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)

    async def scenario():
        await cp.tick()
        chain.mine(chain.sent[0]["hash"], ok=False)
        now[0] = 1.0
        await cp.tick()
        entry = cp.status()["epochs"][-1]
        assert "reverted" in entry["lastError"] and entry["failures"] == 1
        assert len(chain.sent) == 1  # backing off
        now[0] = 6.0
        await cp.tick()
        assert len(chain.sent) == 2 and chain.sent[1]["nonce"] == chain.sent[0]["nonce"] + 1
        chain.mine(chain.sent[1]["hash"])
        await cp.tick()
        assert cp.progress.epochs[3].stage.value == "recorded" and cp.status()["epochs"][-1]["lastError"] is None

    asyncio.run(scenario())


def test_a_recording_by_another_relayer_is_noticed_without_sending():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)
    chain.roots[3] = ROOT
    chain.latest = 3

    async def scenario():
        await cp.tick()
        assert chain.sent == [] and cp.progress.epochs[3].stage.value == "recorded"
        assert cp.progress.epochs[3].own_signature is None  # already recorded when built: not even signed again

    asyncio.run(scenario())


def test_rpc_down_is_reported_on_every_open_epoch_and_recovers():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)

    async def down():
        raise ConnectionError("connection refused")

    async def scenario():
        working = chain.block_number
        chain.block_number = down
        await cp.tick()
        status = cp.status()
        assert status["rpc"]["ok"] is False and "connection refused" in status["epochs"][-1]["lastError"]
        chain.block_number = working
        await cp.tick()
        assert cp.status()["rpc"]["ok"] is True and len(chain.sent) == 1

    asyncio.run(scenario())


def test_an_epoch_anchoring_no_l1_block_is_refused_not_signed():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)

    async def scenario():
        cp.epoch_frozen(4, ROOT, 0, b"\0" * 32, EMPTY_INBOX)
        await cp.tick()
        assert cp.progress.epochs[4].stage.value == "refused" and cp.progress.epochs[4].own_signature is None
        assert "anchors no L1 block" in cp.progress.epochs[4].reason

    asyncio.run(scenario())


def test_an_older_epoch_is_not_relayed_when_a_newer_one_has_its_quorum():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)
    newer = om.Checkpoint(1, 6, b"\x43" * 32, ANCHOR, ANCHOR_HASH)  # epoch 6: relay order starts at MEMBERS[0]

    async def scenario():
        cp.epoch_frozen(6, newer.state_root, ANCHOR, ANCHOR_HASH, EMPTY_INBOX)
        for key in KEYS[1:]:
            await cp.exchange.publish(6, Account.from_key(key).address, om.sign(newer, DOMAIN, key))
        await cp.tick()
        assert [s["epoch"] for s in chain.sent] == [6]  # one transaction, for the newest epoch
        chain.mine(chain.sent[0]["hash"])
        await cp.tick()
        assert cp.progress.epochs[3].stage.value == "superseded"
        assert cp.progress.epochs[6].stage.value == "recorded"

    asyncio.run(scenario())


def test_a_rotation_supersedes_open_epochs_and_the_next_is_built_for_the_new_set():
    chain, now = MemoryChain(), [0.0]
    cp = quorum_checkpointer(chain, now)
    newcomer = keccak256(b"relay newcomer")
    members = om.sort_operators(list(MEMBERS[:2]) + [Account.from_key(newcomer).address])
    chain.current_set = om.OperatorSet(2, 3, members)

    async def scenario():
        await cp.tick()
        old = cp.progress.epochs[3]
        assert old.stage.value == "superseded" and "rotated out" in old.reason
        assert cp.status()["operatorSet"]["id"] == 2
        built = cp.epoch_frozen(4, ROOT, ANCHOR, ANCHOR_HASH, EMPTY_INBOX)
        assert built.message.operator_set_id == 2
        await cp.tick()
        assert cp.progress.epochs[4].stage.value == "signed"  # signed for set 2 (MEMBERS[0] is still a member)
        chain.current_set = om.OperatorSet(3, 3, om.sort_operators(list(MEMBERS[1:]) + [Account.from_key(newcomer).address]))
        now[0] += 31.0
        await cp.tick()
        assert not cp.member
        cp.epoch_frozen(5, ROOT, ANCHOR, ANCHOR_HASH, EMPTY_INBOX)
        await cp.tick()
        assert cp.progress.epochs[5].stage.value == "refused" and "not in the current operator set 3" in cp.progress.epochs[5].reason

    asyncio.run(scenario())
