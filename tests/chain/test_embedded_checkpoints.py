"""Checkpoints end to end on the embedded py-evm chain: watcher -> engine -> epoch -> signatures -> contract.

Four operators (threshold 3), each with its own RPC object, verifier and checkpointer, share signatures through a
board. The tests drive time by hand (the lab's clock) and tick every operator, so they are deterministic.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from chainlab import embedded_lab
from prometheus_client import CollectorRegistry

from ddx_offchain.chain.chain_metrics import ChainMetrics
from ddx_offchain.chain.checkpointer import CheckpointerConfig
from ddx_offchain.chain.core.blocks import SequencedBlock
from ddx_offchain.chain.core.follower import FollowerConfig
from ddx_offchain.chain.core.relay_policy import relay_order
from ddx_offchain.chain.core.verification import Verdict, Verification
from ddx_offchain.chain.operator_chain import chain_blocks_from_history
from ddx_offchain.chain.verifier import BlockVerifier, LedgerError
from ddx_offchain.engine.commands import ChainBlock, Deposit, encode_command
from ddx_offchain.engine.updates import Accepted, Rejected
from ddx_offchain.node.history import History
from ddx_offchain.node.state_machine import AppliedEntry, ExecutionUpdate
from ddx_offchain.protocol.requests import ENTRY_OPERATOR_COMMAND

CONFIG = CheckpointerConfig(confirmations=2, relay_timeout_s=10.0, resubmit_after_s=30.0, stall_after_s=20.0)


def run(coro):
    return asyncio.run(coro)


async def settle(lab, epoch: int, stage: str, ticks: int = 12, seconds: float = 1.0) -> None:
    for _ in range(ticks):
        await lab.tick_all(seconds)
        lab.mine()
        if all(stage_of(op, epoch) == stage for op in lab.operators if op.up):
            return
    raise AssertionError(f"epoch {epoch} did not reach {stage}: {[op.checkpointer.status() for op in lab.operators]}")


def stage_of(op, epoch: int) -> str | None:
    cp = op.checkpointer.progress.epochs.get(epoch)
    return None if cp is None else cp.stage.value


@pytest.fixture
def lab():
    return embedded_lab(4)


def test_deposits_are_credited_and_the_epoch_is_checkpointed_and_final(lab):
    async def scenario():
        lab.add_operators(CONFIG)
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.deposit(0, 1_000)
        lab.deposit(1, 2_500)
        handed = await watcher.poll_once()
        assert [d.amount for b in handed for d in b.deposits] == [1_000, 2_500]
        assert lab.engine.deposit_seq == 2
        assert all(isinstance(u[0], Accepted) for u in lab.results)
        epoch = lab.freeze_epoch()
        await settle(lab, epoch, "final")
        root = lab.engine.frozen_root(epoch)
        assert bytes(lab.exchange.functions.checkpoint_root(epoch).call()) == root
        status = lab.operators[0].checkpointer.status()
        entry = status["epochs"][-1]
        assert entry["signatures"] >= 3 and entry["l1Block"] == lab.engine.block_number
        assert len(entry["txHashes"]) <= 1 and status["lastFinalEpoch"] == epoch
        # exactly one relayer sent (the first in the epoch's order), nobody else needed to
        senders = [op for op in lab.operators if op.checkpointer.progress.epochs[epoch].submissions]
        assert [op.address for op in senders] == [relay_order(epoch, lab.operator_set.members)[0]]

    run(scenario())


def test_one_operator_down_still_reaches_quorum_even_when_it_was_the_relayer(lab):
    async def scenario():
        lab.add_operators(CONFIG)
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.deposit(0, 7)
        await watcher.poll_once()
        epoch = lab.engine.epoch + 1
        first = relay_order(epoch, lab.operator_set.members)[0]
        down = next(op for op in lab.operators if op.address == first)
        down.up = False
        lab.freeze_epoch()
        await settle(lab, epoch, "recorded", ticks=30)
        senders = [op.address for op in lab.operators if op.checkpointer.progress.epochs[epoch].submissions]
        assert senders == [relay_order(epoch, lab.operator_set.members)[1]]  # the fallback, after its timeout
        assert lab.exchange.functions.latest_epoch().call() == epoch

    run(scenario())


def test_too_many_operators_down_stalls_the_checkpoint_but_not_sequencing(lab):
    async def scenario():
        lab.add_operators(CONFIG)
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.operators[1].up = lab.operators[2].up = False
        lab.deposit(0, 5)
        await watcher.poll_once()
        epoch = lab.freeze_epoch()
        for _ in range(25):
            await lab.tick_all()
        status = lab.operators[0].checkpointer.status()
        assert status["state"] == "stalled"
        entry = status["epochs"][-1]
        assert entry["stage"] == "signed" and entry["signatures"] == 2 and entry["threshold"] == 3
        assert lab.operators[1].address in entry["waiting"] and "2 of 4" in entry["waiting"]
        assert lab.exchange.functions.latest_epoch().call() == 0
        # the other clock keeps going: deposits are still sequenced and credited
        lab.deposit(1, 9)
        handed = await watcher.poll_once()
        assert [d.amount for b in handed for d in b.deposits] == [9] and lab.engine.deposit_seq == 2
        # operators come back: the stalled epoch completes
        lab.operators[1].up = lab.operators[2].up = True
        await settle(lab, epoch, "recorded", ticks=30)

    run(scenario())


def test_a_leader_sequencing_a_fake_deposit_gets_no_quorum(lab):
    async def scenario():
        lab.add_operators(CONFIG)
        lab.deposit(0, 100)
        head = lab.w3.eth.block_number
        block = lab.w3.eth.get_block(head)
        trader = bytes.fromhex(lab.w3.eth.accounts[5][2:])
        token = bytes.fromhex(lab.token.address[2:])
        main = b"main".ljust(32, b"\0")
        # the real deposit (seq 1) plus one the chain never saw, credited to the leader's friend
        fake = ChainBlock(
            b"\x01" * 32, head, bytes(block["hash"]),
            (Deposit(1, bytes.fromhex(lab.w3.eth.accounts[1][2:]), main, token, 100), Deposit(2, trader, main, token, 10**9)),
        )
        updates = lab.sequence(fake)
        assert isinstance(updates[0], Accepted)  # the engine cannot know: it trusts sequenced commands
        epoch = lab.freeze_epoch()
        liar = lab.operators[0]

        async def vouch_for_anything(number, anchor_hash=None):
            return None

        async def agree_with_the_state(number=None):
            return lab.engine.inbox_cursor()

        liar.checkpointer.verifier.check_through = vouch_for_anything  # the leader signs its own fake
        liar.checkpointer.rpc.inbox_head = agree_with_the_state  # and ignores the contract's inbox
        for _ in range(6):
            await lab.tick_all()
            lab.mine()
        assert liar.checkpointer.progress.epochs[epoch].stage.value == "signed"  # alone: no quorum
        assert len(liar.checkpointer.progress.epochs[epoch].signatures) == 1
        honest = lab.operators[1:]
        for op in honest:
            cp = op.checkpointer.progress.epochs[epoch]
            assert cp.stage.value == "refused" and cp.own_signature is None
            assert "deposit seqs [1, 2] were sequenced, the chain has [1]" in cp.reason
            assert op.checkpointer.status()["state"] == "refusing"
            assert op.checkpointer.status()["verifier"]["mismatches"][0]["block"] == head
        assert lab.exchange.functions.latest_epoch().call() == 0
        registry = CollectorRegistry()
        metrics = ChainMetrics(registry)
        metrics.refresh(None, honest[0].checkpointer)
        assert registry.get_sample_value("ddx_chain_block_mismatches") == 1
        assert registry.get_sample_value("ddx_checkpoint_refused_epochs") == 1
        assert registry.get_sample_value("ddx_checkpoint_last_recorded_epoch") == 0

    run(scenario())


def test_a_sequenced_block_hash_that_is_not_canonical_is_refused(lab):
    async def scenario():
        lab.add_operators(CONFIG)
        lab.mine(2)
        head = lab.w3.eth.block_number
        lab.sequence(ChainBlock(b"\x02" * 32, head, b"\x99" * 32, ()))
        epoch = lab.freeze_epoch()
        await lab.tick_all()
        for op in lab.operators:
            assert stage_of(op, epoch) == "refused"
            assert "hash" in op.checkpointer.progress.epochs[epoch].reason

    run(scenario())


class FlakyRpc:
    """Proxies an RPC and drops about one call in `period` with a connection error (seeded: reproducible)."""

    def __init__(self, inner, period: int, seed: int = 7) -> None:
        self.inner = inner
        self.period = period
        self.random = random.Random(seed)
        self.calls = 0
        self.failures = 0

    def __getattr__(self, name):
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args, **kwargs):
            self.calls += 1
            if self.random.randrange(self.period) == 0:
                self.failures += 1
                raise ConnectionError(f"flaky RPC: call {self.calls} ({name}) dropped")
            return await target(*args, **kwargs)

        return call


def test_an_rpc_failing_intermittently_is_retried_and_reported(lab):
    async def scenario():
        rpcs = [FlakyRpc(lab.rpc(), period=4, seed=i) for i in range(4)]
        fast = CheckpointerConfig(confirmations=1, relay_timeout_s=10.0, stall_after_s=100.0)
        fast = CheckpointerConfig(**{**fast.__dict__, "backoff": type(fast.backoff)(initial=0.5, maximum=2.0)})
        lab.add_operators(fast, rpcs=rpcs)
        watcher_rpc = FlakyRpc(lab.rpc(), period=3, seed=99)
        watcher = lab.watcher(watcher_rpc, FollowerConfig(confirmations=0, anchor_interval=1))
        for i in range(3):
            lab.deposit(i, 10 + i)
        for _ in range(10):
            try:
                await watcher.poll_once()
                watcher.health.succeeded()
            except ConnectionError as exc:
                watcher.health.failed(exc)
        assert lab.engine.deposit_seq == 3  # every deposit, once, in order, despite the failures
        assert watcher.health.total_failures > 0 and "flaky RPC" in watcher.status()["rpc"]["lastError"]
        epoch = lab.freeze_epoch()
        await settle(lab, epoch, "final", ticks=40)
        assert sum(r.failures for r in rpcs) > 0
        assert any(op.checkpointer.health.total_failures for op in lab.operators)

    run(scenario())


def test_duplicate_relays_are_harmless(lab):
    async def scenario():
        lab.add_operators(CheckpointerConfig(confirmations=1, relay_timeout_s=0.0))  # everyone may relay at once
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.deposit(0, 1)
        await watcher.poll_once()
        epoch = lab.freeze_epoch()
        await settle(lab, epoch, "final", ticks=20)
        assert sum(len(op.checkpointer.progress.epochs[epoch].submissions) for op in lab.operators) >= 1
        assert lab.exchange.functions.latest_epoch().call() == epoch
        assert bytes(lab.exchange.functions.checkpoint_root(epoch).call()) == lab.engine.frozen_root(epoch)

    run(scenario())


def test_verifier_checks_the_blocks_each_operator_recorded(lab):
    async def scenario():
        lab.add_operators(CONFIG)
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.deposit(0, 3)
        await watcher.poll_once()
        for op in lab.operators:
            assert len(op.verifier.blocks) == 1
            assert await op.verifier.check_through(lab.engine.block_number, lab.engine.block_hash) is None
        assert SequencedBlock.from_command(lab.handed[0].command()).deposits[0][4] == 3

    run(scenario())


def test_a_deployment_without_the_supermajority_rule_checkpoints():
    """Security review finding 3: `supermajority_required = false` deployments accept a threshold at or below 2/3,
    but the Python side always enforced the 2/3 rule, so `ddx node` refused to start. The rule is now read from
    the contract: 2 of 4 record a checkpoint with the two others down."""
    from ddx_offchain.protocol import operator_messages as om

    lab = embedded_lab(4, threshold=2, supermajority=False)

    async def scenario():
        read = await lab.rpc().operator_set()  # what a node reads at start
        assert read.threshold == 2 and read.supermajority is False
        with pytest.raises(Exception, match="2/3"):
            om.OperatorSet(read.id, 2, read.members)  # the default rule still refuses it
        lab.add_operators(CONFIG)
        lab.operators[2].up = lab.operators[3].up = False
        watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
        lab.deposit(0, 5)
        await watcher.poll_once()
        epoch = lab.freeze_epoch()
        await settle(lab, epoch, "recorded", ticks=30)
        assert bytes(lab.exchange.functions.checkpoint_root(epoch).call()) == lab.engine.frozen_root(epoch)

    run(scenario())


def deposit_and_fake_block(lab, request_id: bytes) -> tuple[int, ChainBlock]:
    """A real deposit (seq 1) on-chain, and a chain-block command that also credits one the chain never saw."""
    lab.deposit(0, 100)
    head = lab.w3.eth.block_number
    block = lab.w3.eth.get_block(head)
    token = bytes.fromhex(lab.token.address[2:])
    main = b"main".ljust(32, b"\0")
    return head, ChainBlock(
        request_id, head, bytes(block["hash"]),
        (Deposit(1, bytes.fromhex(lab.w3.eth.accounts[1][2:]), main, token, 100),
         Deposit(2, bytes.fromhex(lab.w3.eth.accounts[5][2:]), main, token, 10**9)),
    )


def test_a_restarted_operator_still_refuses_a_fake_deposit_sequenced_before_its_restart(lab, tmp_path):
    """Issue 16 (left open before): the verifier's ledger lived in memory, so an operator restarted from its own
    snapshot (which skips the entries it covers) no longer knew a fake deposit had been sequenced and would sign
    the next state containing it. The ledger now survives the restart (data_dir/chain/verifier-ledger.msgpack)."""

    async def scenario():
        path = tmp_path / "verifier-ledger.msgpack"
        verifier = BlockVerifier(lab.rpc(), confirmations=0, ledger_path=path)
        head, fake = deposit_and_fake_block(lab, b"\x02" * 32)
        verifier.record(SequencedBlock.from_command(fake))  # applied before the restart (and in the snapshot)
        lab.mine(2)
        # restart: a new process, a new verifier; the snapshot means the fake block is never applied again
        restarted = BlockVerifier(lab.rpc(), confirmations=0, ledger_path=path)
        verdict = await restarted.check_through(head)
        assert verdict is not None and verdict.verdict.value == "mismatch" and "[1, 2]" in verdict.reason
        # the same block replayed from the log after the restart is recognised, not recorded twice
        restarted.record(SequencedBlock.from_command(fake))
        assert len(restarted.blocks) == 1
        # a ledger that cannot be read stops the start instead of signing unchecked blocks
        path.write_bytes(b"\x93garbage")
        with pytest.raises(LedgerError):
            BlockVerifier(lab.rpc(), confirmations=0, ledger_path=path)

    run(scenario())


def test_the_ledger_forgets_what_a_final_checkpoint_covers_and_persists_that(lab, tmp_path):

    path = tmp_path / "ledger"
    verifier = BlockVerifier(lab.rpc(), confirmations=0, ledger_path=path)
    for number in (3, 5, 8):
        verifier.record(SequencedBlock(number, bytes([number]) * 32, ()))
    for number in (3, 5, 8):
        verifier.blocks.set_result(Verification(Verdict.CONFIRMED, number, "ok"))
    verifier.forget_through(5)
    reloaded = BlockVerifier(lab.rpc(), confirmations=0, ledger_path=path)
    assert [b.number for b in reloaded.blocks.blocks()] == [8] and reloaded.blocks.forgotten_through == 5
    reloaded.record(SequencedBlock(4, b"\x04" * 32, ()))  # replayed after a restart, already final: ignored
    assert [b.number for b in reloaded.blocks.blocks()] == [8]


def test_blocks_a_snapshot_skipped_are_read_back_from_history_before_signing(lab, tmp_path):
    """Issue 16: a node far behind installs a snapshot from the leader and never applies the entries it skips: the
    chain blocks in them were missing from its ledger, so a fake deposit there went unchecked. Now the verifier
    waits for history (backfilled) below the snapshot, reads those blocks back, and checks them."""

    async def scenario():
        head, fake = deposit_and_fake_block(lab, b"\x03" * 32)
        refused = ChainBlock(b"\x04" * 32, head - 1, b"\x01" * 32)  # the engine rejected it: not sequenced
        history = History(tmp_path / "history.sqlite")

        def source(below, after):  # what OperatorChain.on_restore hands the verifier
            return chain_blocks_from_history(history, below, after)

        verifier = BlockVerifier(lab.rpc(), confirmations=0, ledger_path=tmp_path / "ledger")
        verifier.snapshot_installed(head, 3, source)  # the snapshot covers requests 1-2 and L1 blocks up to head
        lab.mine(2)
        waiting = await verifier.check_through(head)
        assert waiting.verdict.value == "pending" and "backfill" in waiting.reason  # history lacks requests 1-2
        entries = [(1, fake, Accepted(1, fake.request_id, "ChainBlock")),
                   (2, refused, Rejected(2, refused.request_id, "ChainBlock", 1, "not newer"))]
        for index, command, update in entries:
            entry = bytes([ENTRY_OPERATOR_COMMAND]) + encode_command(command)
            history.record(AppliedEntry(index, index, entry, "sequenced", 0, updates=[ExecutionUpdate(index, update, (), None)]))
        history.flush()
        verdict = await verifier.check_through(head)
        assert verdict is not None and verdict.verdict.value == "mismatch" and "[1, 2]" in verdict.reason
        assert [b.number for b in verifier.blocks.blocks()] == [head]  # the rejected block was not read back
        history.close()

    run(scenario())
