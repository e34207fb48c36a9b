"""Self-custody drills on the embedded chain (issue 10, part 3): the contract, the real watcher, engine, verifiers,
checkpointers and relay code (tests/chain/chainlab.py), with the faults a censoring or lying quorum would bring.

- Censorship: the operators ignore one trader's forced withdrawal (they drop it from what they sequence and vouch
  for a state without it), and keep checkpointing; after the forced deadline a third party freezes and the trader
  escapes with the last checkpoint's proofs. The honest path: the forced request is taken, paid by a claim, no freeze.
- Skipped deposit: honest operators refuse to sign a state that skipped one; a quorum that signs a state claiming it
  anyway cannot get it recorded, and one that stays behind it cannot keep the exchange from freezing.
- A contract wallet (no key to sign a withdraw intent) deposits, forces its withdrawal from L1 and claims.
"""

from __future__ import annotations

import asyncio

import pytest
from chainlab import embedded_lab

from ddx_offchain.api import render
from ddx_offchain.chain.checkpointer import CheckpointerConfig
from ddx_offchain.chain.core.blocks import ConfirmedBlock, ForcedEvent
from ddx_offchain.chain.core.follower import FollowerConfig
from ddx_offchain.chain.inbox_report import inbox_report
from ddx_offchain.client.claims import ClaimError, LeafProof, Sender, claim, escape, force_request, freeze_if_due
from ddx_offchain.deployment.artifacts import REPO_ROOT, compile_path
from ddx_offchain.engine.commands import ChainBlock
from ddx_offchain.engine.updates import ForcedRequestApplied, WithdrawalUpdate
from ddx_offchain.protocol import requests as pr
from ddx_offchain.protocol.inbox import InboxCursor

CONFIG = CheckpointerConfig(confirmations=1, relay_timeout_s=10.0)
FOLLOW = FollowerConfig(confirmations=0, anchor_interval=1)
MAIN = pr.strategy_id("main")


def raw(address: str) -> bytes:
    return bytes.fromhex(address[2:])


async def checkpoint(lab, ticks: int = 15) -> int:
    epoch = lab.freeze_epoch()
    for _ in range(ticks):
        await lab.tick_all()
        lab.mine()
        if lab.exchange.functions.latest_epoch().call() == epoch:
            return epoch
    raise AssertionError([op.checkpointer.status() for op in lab.operators])


def past(lab, seconds: int) -> None:
    now = lab.w3.eth.get_block("latest")["timestamp"]
    lab.w3.testing.timeTravel(now + seconds)
    lab.mine()


def forced_deadline(lab) -> int:
    return lab.exchange.functions.forced_deadline().call()


class Censoring:
    """The operators' view of the chain without one trader's forced requests (what they sequence)."""

    def __init__(self, rpc, trader: str) -> None:
        self.rpc = rpc
        self.trader = raw(trader)

    def __getattr__(self, name):
        return getattr(self.rpc, name)

    async def inbox_events(self, first, last):
        events = await self.rpc.inbox_events(first, last)
        return [e for e in events if not (type(e) is ForcedEvent and e.trader == self.trader)]


def collude(lab) -> None:
    """Every operator vouches for the sequenced state's inbox at the anchor instead of asking the contract (the
    relay still proves the cursor with the chain's real leaves: the quorum wants its checkpoints recorded)."""
    for op in lab.operators:
        honest = op.checkpointer.rpc.inbox_head

        async def lying(block_number=None, honest=honest):
            return lab.engine.inbox_cursor() if block_number is not None else await honest()

        op.checkpointer.rpc.inbox_head = lying


def fund(lab, trader: str, amount: int) -> None:
    lab.token.functions.mint(trader, amount).transact({"from": lab.w3.eth.accounts[0]})
    lab.token.functions.approve(lab.exchange.address, 2**256 - 1).transact({"from": trader})


def test_censored_forced_withdrawal_leads_to_a_freeze_and_the_trader_escapes():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    victim, other = lab.w3.eth.accounts[3], lab.w3.eth.accounts[4]
    watcher = lab.watcher(Censoring(lab.rpc(), victim), FOLLOW)
    token = lab.token.address
    collude(lab)

    async def scenario():
        for who, amount in ((victim, 5_000), (other, 7_000)):
            fund(lab, who, amount)
            lab.exchange.functions.deposit(token, amount).transact({"from": who})
        await watcher.poll_once()
        last = await checkpoint(lab)
        # the victim's signed requests are ignored: it forces its withdrawal through L1
        sent = force_request(lab.w3, lab.exchange, pr.WithdrawIntent(raw(victim), MAIN, raw(token), 3_000, 0, 0),
                             Sender(victim))
        assert sent.seq == 1 and sent.deadline == lab.w3.eth.get_block(sent.block_number)["timestamp"] + forced_deadline(lab)
        # GET /v1/inbox shows it pending, with its deadline, beside the engine's cursor that lacks it
        report = await inbox_report(lab.rpc(), lab.engine.inbox_cursor(), lab.engine.block_number, raw(victim))
        doc = render.inbox_doc(report)
        assert [(f["seq"], f["trader"], f["deadline"]) for f in doc["pendingForced"]] == [("1", victim, str(sent.deadline))]
        assert (doc["contract"]["forced"], doc["engine"]["forced"], doc["freezeDueAt"]) == ("1", "0", str(sent.deadline))
        assert (await inbox_report(lab.rpc(), lab.engine.inbox_cursor(), lab.engine.block_number, raw(other))).pending_forced == ()
        # the quorum keeps checkpointing without it (its cursor stops before the forced request)
        for _ in range(2):
            lab.mine()
            await watcher.poll_once()
            last = await checkpoint(lab)
            assert lab.engine.forced_seq == 0
            covered, pending, _ = lab.exchange.functions.inbox_coverage().call()
            assert (covered, pending) == (2, 3)
        third_party = Sender(lab.w3.eth.accounts[9])
        assert freeze_if_due(lab.w3, lab.exchange, third_party) is False  # before the deadline
        past(lab, forced_deadline(lab))
        assert freeze_if_due(lab.w3, lab.exchange, third_party) is True
        assert lab.exchange.functions.frozen().call()
        # the victim escapes with the last checkpoint's proofs: its whole balance, nothing was withdrawn
        proofs = lab.engine.epoch_proofs(last, raw(victim), raw(token))
        balance = LeafProof.from_engine(proofs, victim, token, kind="balance")
        payout = escape(lab.w3, lab.exchange, lab.token, balance, None, third_party)
        assert payout.paid == 5_000 and payout.trader_balance_after - payout.trader_balance_before == 5_000
        with pytest.raises(ClaimError, match="frozen"):
            force_request(lab.w3, lab.exchange, pr.CancelAll(raw(other), MAIN, b"\0" * 32, 0, 0), Sender(other))

    asyncio.run(scenario())


def test_honest_operators_take_the_forced_withdrawal_and_it_is_claimed_without_a_freeze():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    trader = lab.w3.eth.accounts[3]
    watcher = lab.watcher(lab.rpc(), FOLLOW)
    token = lab.token.address

    async def scenario():
        fund(lab, trader, 5_000)
        lab.exchange.functions.deposit(token, 5_000).transact({"from": trader})
        await watcher.poll_once()
        force_request(lab.w3, lab.exchange, pr.WithdrawIntent(raw(trader), MAIN, raw(token), 3_000, 0, 0), Sender(trader))
        lab.mine()
        await watcher.poll_once()
        applied = [u for updates in lab.results for u in updates if isinstance(u, ForcedRequestApplied)]
        assert [(a.seq, a.reason) for a in applied] == [(1, 0)]
        assert any(isinstance(u, WithdrawalUpdate) and u.cumulative == 3_000 for updates in lab.results for u in updates)
        epoch = await checkpoint(lab)
        assert lab.exchange.functions.inbox_coverage().call()[:2] == [2, 2] or \
            tuple(lab.exchange.functions.inbox_coverage().call()[:2]) == (2, 2)
        proof = LeafProof.from_engine(lab.engine.epoch_proofs(epoch, raw(trader), raw(token)), trader, token)
        payout = claim(lab.w3, lab.exchange, lab.token, proof, Sender(lab.w3.eth.accounts[9]))
        assert payout.paid == 3_000
        past(lab, forced_deadline(lab) + 1)
        assert freeze_if_due(lab.w3, lab.exchange, Sender(lab.w3.eth.accounts[9])) is False

    asyncio.run(scenario())


def _skip_a_deposit(lab) -> int:
    """The leader sequences a block after the one holding deposit 1, as if it were not there."""
    head = lab.w3.eth.block_number
    lab.mine()
    later = lab.w3.eth.get_block(head + 1)
    updates = lab.sequence(ChainBlock(b"\x05" * 32, later.number, bytes(later.hash), (), ()))
    assert type(updates[0]).__name__ == "Accepted"  # the engine cannot know
    return head


def test_a_leader_that_skips_a_deposit_gets_no_signature_from_honest_operators():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    trader = lab.w3.eth.accounts[3]

    async def scenario():
        fund(lab, trader, 100)
        lab.exchange.functions.deposit(lab.token.address, 100).transact({"from": trader})
        _skip_a_deposit(lab)
        epoch = lab.freeze_epoch()
        for _ in range(6):
            await lab.tick_all()
            lab.mine()
        for op in lab.operators:
            cp = op.checkpointer.progress.epochs[epoch]
            assert cp.stage.value == "refused" and cp.own_signature is None
            assert "the state covers 0 deposits" in cp.reason and "had 1" in cp.reason
            assert op.checkpointer.inbox_mismatches == 1
        assert lab.exchange.functions.latest_epoch().call() == 0

    asyncio.run(scenario())


def test_a_quorum_over_a_skipped_deposit_cannot_record_a_forged_cursor_nor_stop_the_freeze():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    trader = lab.w3.eth.accounts[3]
    collude(lab)

    async def scenario():
        fund(lab, trader, 100)
        lab.exchange.functions.deposit(lab.token.address, 100).transact({"from": trader})
        _skip_a_deposit(lab)
        # a state behind the deposit is a true prefix of the inbox: recorded, but the deposit stays uncovered
        await checkpoint(lab)
        covered, pending, since = lab.exchange.functions.inbox_coverage().call()
        assert (covered, pending) == (0, 1)
        # a cursor claiming the deposit with another history is refused by the contract
        from ddx_offchain.protocol import operator_messages as om
        from ddx_offchain.protocol.hashing import keccak256

        anchor = lab.w3.eth.get_block("latest")
        forged = om.Checkpoint(lab.operator_set.id, 9, keccak256(b"x"), anchor.number, bytes(anchor.hash),
                               InboxCursor(1, 0, keccak256(b"a deposit the chain never saw")))
        quorum = om.sign_quorum(forged, lab.domain, lab.operator_set, lab.keys[: lab.operator_set.threshold])
        lab.mine()
        with pytest.raises(Exception, match="not on the chain's inbox"):
            lab.exchange.functions.submit_checkpoint(
                forged.epoch, forged.state_root, forged.l1_block_number, forged.l1_block_hash, forged.inbox.as_abi(),
                lab.operator_set.as_abi(), *quorum.as_abi(),
            ).transact({"from": lab.w3.eth.accounts[9]})
        past(lab, forced_deadline(lab))
        await checkpoint(lab)  # checkpointing on does not help
        assert freeze_if_due(lab.w3, lab.exchange, Sender(lab.w3.eth.accounts[9])) is True

    asyncio.run(scenario())


def test_a_contract_wallet_deposits_forces_its_withdrawal_and_claims():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    watcher = lab.watcher(lab.rpc(), FOLLOW)
    owner = lab.w3.eth.accounts[6]
    compiled = compile_path(str(REPO_ROOT / "tests/harness/ContractWallet.vy"))
    factory = lab.w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
    receipt = lab.w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": owner}))
    wallet = lab.w3.eth.contract(address=receipt.contractAddress, abi=compiled.abi)
    token = lab.token.address

    async def scenario():
        lab.token.functions.mint(wallet.address, 10_000).transact({"from": owner})
        wallet.functions.approve(token, lab.exchange.address, 2**256 - 1).transact({"from": owner})
        wallet.functions.deposit(lab.exchange.address, token, 10_000).transact({"from": owner})
        await watcher.poll_once()
        request_type, fields = pr.forced_fields(pr.WithdrawIntent(raw(wallet.address), MAIN, raw(token), 4_000, 0, 0))
        wallet.functions.force(lab.exchange.address, request_type, fields).transact({"from": owner})
        lab.mine()
        await watcher.poll_once()
        applied = [u for updates in lab.results for u in updates if isinstance(u, ForcedRequestApplied)]
        assert [(a.trader, a.reason) for a in applied] == [(raw(wallet.address), 0)]
        epoch = await checkpoint(lab)
        proof = LeafProof.from_engine(lab.engine.epoch_proofs(epoch, raw(wallet.address), raw(token)), wallet.address, token)
        payout = claim(lab.w3, lab.exchange, lab.token, proof, Sender(lab.w3.eth.accounts[9]))
        assert payout.paid == 4_000 and lab.token.functions.balanceOf(wallet.address).call() == 4_000

    asyncio.run(scenario())


def test_the_watcher_halts_when_its_rpc_drops_an_inbox_log():
    """An RPC that loses a forced request's log (or a deposit's) would let the leader sequence past it: the watcher
    compares what it read with the contract's own inbox head at each block it hands over, and stops instead."""
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    trader = lab.w3.eth.accounts[3]
    watcher = lab.watcher(Censoring(lab.rpc(), trader), FOLLOW)  # a lossy RPC: drops this trader's forced requests

    async def scenario():
        fund(lab, trader, 100)
        lab.exchange.functions.deposit(lab.token.address, 100).transact({"from": trader})
        force_request(lab.w3, lab.exchange, pr.CancelAll(raw(trader), MAIN, b"\0" * 32, 0, 0), Sender(trader))
        lab.mine()
        handed = await watcher.poll_once()
        status = watcher.status()
        assert status["state"] == "halted" and status["alarm"]["kind"] == "inbox_mismatch"
        assert "an inbox log is missing" in status["alarm"]["detail"]
        assert all(not isinstance(b, ConfirmedBlock) or not b.forced for b in handed)
        assert lab.engine.forced_seq == 0

    asyncio.run(scenario())
