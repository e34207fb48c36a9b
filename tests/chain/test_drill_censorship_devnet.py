"""The censorship drill on a real 3-operator devnet (Raft, engine, API, chain sides): every operator runs a test-only
fault that ignores one trader — its signed requests are refused at the API, its forced requests are dropped by the
watcher, and the operators vouch for states without them. The trader forces a withdrawal on L1; checkpoints keep
being recorded (without it); after the forced deadline a third party freezes the exchange; the trader escapes
with the last checkpoint's proofs and gets everything it had back."""

from __future__ import annotations

import asyncio

from eth_account import Account
from polling import eventually

from ddx_offchain.chain.core.blocks import ForcedEvent
from ddx_offchain.client.api import DdxClient, RequestRefused
from ddx_offchain.client.claims import Sender, force_request
from ddx_offchain.client.settlement import Settlement
from ddx_offchain.client.signer import Trader
from ddx_offchain.devnet.cluster import DOLLAR, start_cluster
from ddx_offchain.node.admission import AdmissionError
from ddx_offchain.protocol import requests as pr
from ddx_offchain.protocol.eip712 import Domain as RequestDomain
from ddx_offchain.protocol.hashing import keccak256


class _Censoring:
    """The leader's view of the chain without `trader`'s forced requests."""

    def __init__(self, rpc, trader: bytes) -> None:
        self._rpc, self._trader = rpc, trader

    def __getattr__(self, name):
        return getattr(self._rpc, name)

    async def inbox_events(self, first, last):
        events = await self._rpc.inbox_events(first, last)
        return [e for e in events if not (type(e) is ForcedEvent and e.trader == self._trader)]


def censor(cluster, trader: bytes) -> None:
    """The test-only fault, on every operator: API, watcher, block verifier and signing check."""
    for running, chain in zip(cluster.nodes, cluster.chains):
        admission = running.node.service.admission
        admit = admission.admit

        def refuse_the_victim(doc, origin=None, admit=admit):
            signed = admit(doc, origin)
            if signed.request.trader == trader:
                raise AdmissionError("overloaded", "try again later")  # what a censor would say
            return signed

        admission.admit = refuse_the_victim
        chain.watcher.rpc = _Censoring(chain.watcher.rpc, trader)
        chain.verifier.rpc = _Censoring(chain.verifier.rpc, trader)  # its block checks see no such request either
        honest = chain.rpc.inbox_head
        engine = chain._engine

        async def vouch(block_number=None, honest=honest, engine=engine):
            return engine().inbox_cursor() if block_number is not None else await honest()

        chain.rpc.inbox_head = vouch


def test_censored_trader_forces_its_withdrawal_then_freezes_and_escapes(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=3, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            key = keccak256(b"censored trader")
            victim = Account.from_key(key).address
            raw_victim = bytes.fromhex(victim[2:])
            token = cluster.token.address
            cluster.fund(victim, 100 * DOLLAR)
            cluster.deposit(key, 80 * DOLLAR)
            domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
            operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
            async with DdxClient(cluster.api_urls, domain, operators) as client:

                async def credited():
                    state = await client.trader_state(raw_victim)
                    return any(s["collateral"] == str(80 * DOLLAR) for s in state["strategies"])

                await eventually(credited, "the deposit credited", timeout_s=60)
                censor(cluster, raw_victim)
                trader = Trader(key, domain)
                try:
                    await client.submit(trader.withdraw_intent(bytes.fromhex(token[2:]), 30 * DOLLAR))
                    raise AssertionError("the censoring operators took the request")
                except RequestRefused:
                    pass
                sent = force_request(
                    cluster.w3, cluster.exchange,
                    pr.WithdrawIntent(raw_victim, pr.strategy_id("main"), bytes.fromhex(token[2:]), 30 * DOLLAR, 0, 0),
                    Sender.from_key(key),
                )
                before = cluster.exchange.functions.latest_epoch().call()

                async def checkpoints_go_on():
                    return cluster.exchange.functions.latest_epoch().call() >= before + 2

                await eventually(checkpoints_go_on, "checkpoints recorded while the request is ignored", timeout_s=60)
                leader = cluster.leader()
                assert leader.node.engine.engine.forced_seq == 0  # never taken
                covered, pending, since = cluster.exchange.functions.inbox_coverage().call()
                assert covered == 1 and pending == 2 and since + cluster.exchange.functions.forced_deadline().call() == sent.deadline
                cluster.w3.testing.timeTravel(sent.deadline)
                cluster.w3.testing.mine(1)
                settlement = Settlement(client, cluster.w3, cluster.exchange, cluster.token.abi)
                last = cluster.exchange.functions.latest_epoch().call()
                balance, withdrawal = await settlement.escape_proofs(victim, token)
                assert balance.epoch == last and withdrawal is None
                payout = settlement.escape(balance, withdrawal, Sender(cluster.w3.eth.accounts[7]))  # freezes first
            assert cluster.exchange.functions.frozen().call()
            assert payout.paid == 80 * DOLLAR and cluster.token.functions.balanceOf(victim).call() == 100 * DOLLAR
        finally:
            await cluster.stop()

    asyncio.run(asyncio.wait_for(scenario(), 180))
