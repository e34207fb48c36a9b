"""Deposit → credited → withdraw intent → checkpoint by quorum → claim with a proof → tokens; then the escape hatch.

On the embedded chain, with the engine standing in for the replicated state machine (tests/chain/chainlab.py) and the
real watcher, verifiers, checkpointers and claim code.
"""

from __future__ import annotations

import asyncio

import pytest
from chainlab import embedded_lab

from ddx_offchain.chain.checkpointer import CheckpointerConfig
from ddx_offchain.chain.core.follower import FollowerConfig
from ddx_offchain.client.claims import (
    ZERO,
    AbsentBalance,
    ClaimError,
    LeafProof,
    Sender,
    balance_from_api,
    claim,
    escape,
    freeze_if_due,
)
from ddx_offchain.engine.commands import MAIN_STRATEGY, WithdrawIntent
from ddx_offchain.engine.updates import Accepted

CONFIG = CheckpointerConfig(confirmations=1, relay_timeout_s=10.0)


async def checkpoint(lab) -> int:
    epoch = lab.freeze_epoch()
    for _ in range(15):
        await lab.tick_all()
        lab.mine()
        if lab.exchange.functions.latest_epoch().call() == epoch:
            return epoch
    raise AssertionError(lab.operators[0].checkpointer.status())


def test_deposit_withdraw_checkpoint_claim_and_a_second_claim_pays_nothing():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
    trader = lab.w3.eth.accounts[1]
    token = lab.token.address

    async def scenario():
        lab.deposit(0, 5_000_000)
        await watcher.poll_once()
        updates = lab.sequence(WithdrawIntent(b"\x07" * 32, bytes.fromhex(trader[2:]), MAIN_STRATEGY, bytes.fromhex(token[2:]), 1_250_000))
        assert isinstance(updates[0], Accepted)
        epoch = await checkpoint(lab)
        proofs = lab.engine.epoch_proofs(epoch, bytes.fromhex(trader[2:]), bytes.fromhex(token[2:]))
        proof = LeafProof.from_engine(proofs, trader, token)
        assert proof.amount == 1_250_000
        # anyone relays the claim; the tokens go to the trader
        relayer = Sender(lab.w3.eth.accounts[9])
        payout = claim(lab.w3, lab.exchange, lab.token, proof, relayer)
        assert payout.paid == 1_250_000 and payout.unpaid == 0
        assert payout.trader_balance_after - payout.trader_balance_before == 1_250_000
        again = claim(lab.w3, lab.exchange, lab.token, proof, relayer)
        assert again.tx_hash is None and again.paid == 0
        # the same proof as the API serves it (docs/protocol.md §4 JSON form)
        doc = {"epoch": str(epoch), "root": "0x" + proof.root.hex(), "cumulative": str(proof.amount),
               "proof": proofs["withdrawal"].to_json()}
        assert LeafProof.from_api(doc, trader, token) == proof
        with pytest.raises(ClaimError, match="another item"):
            LeafProof.from_api(doc, lab.w3.eth.accounts[2], token)  # someone else's leaf
        forged = dict(doc, cumulative=str(proof.amount + 1))
        with pytest.raises(ClaimError, match="does not lead"):
            LeafProof.from_api(forged, trader, token)
        await lab.close()

    asyncio.run(scenario())


def test_a_proof_for_an_epoch_not_yet_recorded_sends_nothing():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
    trader, token = lab.w3.eth.accounts[1], lab.token.address

    async def scenario():
        lab.deposit(0, 100)
        await watcher.poll_once()
        lab.sequence(WithdrawIntent(b"\x08" * 32, bytes.fromhex(trader[2:]), MAIN_STRATEGY, bytes.fromhex(token[2:]), 40))
        epoch = lab.freeze_epoch()  # frozen, not checkpointed
        proof = LeafProof.from_engine(lab.engine.epoch_proofs(epoch, bytes.fromhex(trader[2:]), bytes.fromhex(token[2:])), trader, token)
        nonce = lab.w3.eth.get_transaction_count(lab.w3.eth.accounts[9])
        with pytest.raises(ClaimError, match="not recorded"):
            claim(lab.w3, lab.exchange, lab.token, proof, Sender(lab.w3.eth.accounts[9]))
        assert lab.w3.eth.get_transaction_count(lab.w3.eth.accounts[9]) == nonce

    asyncio.run(scenario())


def test_escape_hatch_after_the_delay_with_the_last_checkpoints_balance():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
    trader, token = lab.w3.eth.accounts[2], lab.token.address
    raw_trader, raw_token = bytes.fromhex(trader[2:]), bytes.fromhex(token[2:])

    async def scenario():
        lab.deposit(1, 3_000)
        await watcher.poll_once()
        lab.sequence(WithdrawIntent(b"\x09" * 32, raw_trader, MAIN_STRATEGY, raw_token, 1_000))
        epoch = await checkpoint(lab)
        proofs = lab.engine.epoch_proofs(epoch, raw_trader, raw_token)
        balance = LeafProof.from_engine(proofs, trader, token, kind="balance")
        withdrawal = LeafProof.from_engine(proofs, trader, token)
        assert (balance.amount, withdrawal.amount) == (2_000, 1_000)
        sender = Sender(lab.w3.eth.accounts[9])
        assert freeze_if_due(lab.w3, lab.exchange, sender) is False  # operators are alive
        with pytest.raises(ClaimError, match="not frozen"):
            escape(lab.w3, lab.exchange, lab.token, balance, withdrawal, sender)
        delay = lab.exchange.functions.escape_delay().call()
        now = lab.w3.eth.get_block("latest")["timestamp"]
        lab.w3.testing.timeTravel(now + delay + 1)
        lab.mine()
        assert freeze_if_due(lab.w3, lab.exchange, sender) is True
        payout = escape(lab.w3, lab.exchange, lab.token, balance, withdrawal, sender)
        assert payout.paid == 3_000 and payout.trader_balance_after - payout.trader_balance_before == 3_000
        with pytest.raises(ClaimError, match="nothing to escape"):
            escape(lab.w3, lab.exchange, lab.token, balance, withdrawal, sender)  # once per token

    asyncio.run(scenario())


def past_the_escape_delay(lab) -> None:
    delay = lab.exchange.functions.escape_delay().call()
    last = lab.exchange.functions.last_checkpoint_at().call()
    now = lab.w3.eth.get_block("latest")["timestamp"]
    lab.w3.testing.timeTravel(max(now, last) + delay + 1)
    lab.mine()


def test_escape_of_a_pair_without_a_balance_leaf_uses_a_non_inclusion_proof():
    """A deposit the engine never credited before the last checkpoint: the pair has no BALANCE leaf, so the escape
    passes (0, 0) with a non-inclusion proof and is paid the on-chain deposit."""
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    watcher = lab.watcher(lab.rpc(), FollowerConfig(confirmations=0, anchor_interval=1))
    credited, late = lab.w3.eth.accounts[1], lab.w3.eth.accounts[2]
    token = lab.token.address

    async def scenario():
        lab.deposit(0, 4_000)  # accounts[1], credited and checkpointed: the tree is not empty
        await watcher.poll_once()
        epoch = await checkpoint(lab)
        lab.deposit(1, 700)  # accounts[2], after the checkpoint: never credited in it
        proofs = lab.engine.epoch_proofs(epoch, bytes.fromhex(late[2:]), bytes.fromhex(token[2:]))
        assert proofs["balance_value"] is None
        absent = AbsentBalance.from_engine(proofs, late, token)
        doc = {"included": False, "epoch": str(epoch), "root": "0x" + proofs["root"].hex(), "amount": "0", "deposited": "0",
               "proof": proofs["balance"].to_json()}
        assert balance_from_api(doc, late, token) == absent  # the API's document for the same absence
        with pytest.raises(ClaimError, match="another item"):
            balance_from_api(doc, credited, token)
        with pytest.raises(ClaimError, match="does not lead"):
            AbsentBalance.from_api(dict(doc, root="0x" + "ab" * 32), late, token)
        with pytest.raises(ClaimError, match="has a balance leaf"):
            AbsentBalance.from_engine(lab.engine.epoch_proofs(epoch, bytes.fromhex(credited[2:]), bytes.fromhex(token[2:])), credited, token)
        sender = Sender(lab.w3.eth.accounts[9])
        past_the_escape_delay(lab)
        assert freeze_if_due(lab.w3, lab.exchange, sender) is True
        payout = escape(lab.w3, lab.exchange, lab.token, absent, None, sender)
        assert payout.paid == 700 and payout.trader_balance_after - payout.trader_balance_before == 700
        with pytest.raises(ClaimError, match="nothing to escape"):
            escape(lab.w3, lab.exchange, lab.token, absent, None, sender)
        # a forged absence of a pair that has a leaf folds to another root: refused before anything is sent
        forged = AbsentBalance(credited, token, epoch, proofs["root"], absent.siblings, absent.other_key, absent.other_value_hash)
        with pytest.raises(ClaimError, match="does not lead"):
            escape(lab.w3, lab.exchange, lab.token, forged, None, sender)
        await lab.close()

    asyncio.run(scenario())


def test_escape_before_any_checkpoint_returns_the_deposits():
    lab = embedded_lab(4)
    lab.add_operators(CONFIG)
    trader, token = lab.w3.eth.accounts[3], lab.token.address

    async def scenario():
        lab.deposit(2, 900)  # accounts[3]; no epoch is ever checkpointed
        assert lab.exchange.functions.latest_epoch().call() == 0
        nothing = AbsentBalance.before_any_checkpoint(trader, token)
        sender = Sender(lab.w3.eth.accounts[9])
        with pytest.raises(ClaimError, match="not frozen"):
            escape(lab.w3, lab.exchange, lab.token, nothing, None, sender)
        past_the_escape_delay(lab)
        assert freeze_if_due(lab.w3, lab.exchange, sender) is True
        with pytest.raises(ClaimError, match="root is zero"):
            escape(lab.w3, lab.exchange, lab.token, AbsentBalance(trader, token, 0, ZERO, (b"\x01" * 32,)), None, sender)
        payout = escape(lab.w3, lab.exchange, lab.token, nothing, None, sender)
        assert payout.paid == 900 and payout.trader_balance_after - payout.trader_balance_before == 900
        await lab.close()

    asyncio.run(scenario())
