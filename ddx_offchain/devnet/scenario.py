"""`ddx devnet --demo`: a scripted scenario on the full devnet that shows the two clocks.

Deposits on-chain → credited once confirmed; trading between three traders with receipts in milliseconds (alice's
trade-only agent key quoting in an all-or-nothing batch, carol's stop-loss on her position); a price drop that
liquidates one of them (her stop-loss goes with the position); a withdrawal; the epoch's checkpoint going built → signed → submitted →
recorded → final in seconds; a claim with the API's proof through plain web3; a second claim paying nothing; a
withdrawal forced through L1 (what a trader does when the operators ignore it) taken by the engine before its
deadline; a public replica (`ddx replica`) following the operators and auditing each checkpoint.
The devnet's index prices come from this script (through the leader, as an operator command).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import aiohttp
from eth_account import Account

from ..client.api import DdxClient
from ..client.claims import LeafProof, Sender, claim, force_request
from ..client.signer import Trader, place_action
from ..engine.commands import BUY, SELL, IndexPrice, IndexPrices, encode_command, name32
from ..protocol import requests as pr
from ..protocol.eip712 import Domain as RequestDomain
from ..protocol.hashing import keccak256
from .cluster import DOLLAR, DevnetCluster

Echo = Callable[[str], None]
ETHP = name32("ETHP")
CONTRACT = 10**6  # size_decimals = 6


class Timeline:
    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.started = time.monotonic()

    def __call__(self, clock: str, text: str) -> None:
        self.echo(f"[{time.monotonic() - self.started:7.2f}s] {clock:<10} {text}")


async def _eventually(predicate, timeout_s: float, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(interval_s)
    raise TimeoutError("the devnet did not get there in time")


async def run_scenario(cluster: DevnetCluster, echo: Echo = print) -> dict:
    t = Timeline(echo)
    token = cluster.token.address
    domain = RequestDomain.of(cluster.manifest.chain_id, cluster.manifest.exchange)
    operators = [bytes.fromhex(Account.from_key(k).address[2:]) for k in cluster.operator_keys]
    keys = {name: keccak256(f"ddx devnet demo {name}".encode()) for name in ("alice", "bob", "carol")}
    traders = {name: Trader(key, domain) for name, key in keys.items()}
    address = {name: Account.from_key(key).address for name, key in keys.items()}
    summary: dict = {"receipt_ms": []}
    replica = await cluster.start_replica()
    t("replica", f"a public replica follows the operators' request log and serves their read API at {replica.url}")

    async def propose_price(price: int) -> list:
        leader = await cluster.wait_for_leader()
        rid = keccak256(b"devnet index " + price.to_bytes(32, "big") + time.time_ns().to_bytes(16, "big"))
        applied = await leader.node.service.propose_operator_command(encode_command(IndexPrices(rid, (IndexPrice(ETHP, price),))))
        return applied.updates

    async with DdxClient(cluster.api_urls, domain, operators) as client, aiohttp.ClientSession() as http:

        async def submit(name: str, signed, what: str):
            started = time.perf_counter()
            receipt = await client.submit(signed)
            ms = (time.perf_counter() - started) * 1000
            summary["receipt_ms"].append(ms)
            t("sequencing", f"{name}: {what} -> receipt #{receipt.request_index} in {ms:.1f} ms (epoch {receipt.epoch})")
            return receipt

        # ---- deposits: the chain clock ---------------------------------------------------------------------
        amounts = {"alice": 5_000 * DOLLAR, "bob": 5_000 * DOLLAR, "carol": 250 * DOLLAR}
        for name, amount in amounts.items():
            cluster.fund(address[name], amount)
            receipt = cluster.deposit(keys[name], amount)
            t("chain", f"{name} deposits {amount // DOLLAR} USDX in block {receipt['blockNumber']}")
        deposit_seen = time.monotonic()

        async def all_credited():
            for name, amount in amounts.items():
                state = await client.trader_state(bytes.fromhex(address[name][2:]))
                if not any(s["collateral"] == str(amount) for s in state["strategies"]):
                    return False
            return True

        await _eventually(all_credited, 60)
        t("chain", f"all three deposits credited by the engine after {time.monotonic() - deposit_seen:.2f} s (watcher → chain block → Raft)")

        # ---- trading: the sequencing clock -----------------------------------------------------------------
        await propose_price(2_000 * DOLLAR)
        t("sequencing", "index price ETHP 2000 (oracle command through the leader)")
        await submit("alice", traders["alice"].place_order("ETHP", SELL, CONTRACT, 2_000 * DOLLAR), "sell 1 ETHP @ 2000")
        await submit("carol", traders["carol"].place_order("ETHP", BUY, CONTRACT, 2_000 * DOLLAR), "buy 1 ETHP @ 2000 (10x leverage)")
        await submit("bob", traders["bob"].place_order("ETHP", BUY, CONTRACT, 1_850 * DOLLAR), "bid 1 ETHP @ 1850")
        # what a market maker's bot does: a trade-only agent key quotes for alice in one all-or-nothing batch
        agent_key = keccak256(b"ddx devnet demo alice's agent")
        agent = Trader(agent_key, domain, trader=traders["alice"].address)
        await submit("alice", traders["alice"].approve_agent(agent.signer, int(time.time() * 1000) + 3_600_000),
                     "approves a trade-only agent key for an hour")
        quotes = agent.batch([place_action("ETHP", SELL, CONTRACT // 10, price * DOLLAR, order_type=2,
                                           client_order_id=f"ask-{price}") for price in (2_100, 2_110, 2_120)],
                             atomic=True)
        await submit("alice's agent", quotes, "an all-or-nothing batch of 3 post-only asks (one signature)")
        await submit("carol", traders["carol"].place_trigger("ETHP", SELL, 1, 1_500 * DOLLAR, 0, attached=True),
                     "stop-loss on her whole long if the mark falls to 1500")
        updates = await propose_price(1_800 * DOLLAR)
        liquidations = [u for u in updates if u.kind == "Liquidation"]
        summary["liquidations"] = len(liquidations)
        stops_gone = [u for u in updates if u.kind == "TriggerUpdate" and u.update.status == 2]
        t("sequencing", f"index price ETHP 1800: {len(liquidations)} liquidation(s)"
          + (" — carol's long closed against bob's bid" if liquidations else "")
          + (", her stop-loss cancelled with the position" if stops_gone else ""))

        # ---- withdrawal and checkpoint: the settlement clock -----------------------------------------------
        withdraw = 1_000 * DOLLAR
        receipt = await submit("bob", traders["bob"].withdraw_intent(bytes.fromhex(token[2:]), withdraw), f"withdraw {withdraw // DOLLAR} USDX")
        seen: set[tuple[int, str]] = set()
        events: list[tuple[int, int, str, dict]] = []  # (operator, epoch, stage, status entry), as they happen
        for index, chain in enumerate(cluster.chains):
            chain.checkpointer.stage_listeners.append(
                lambda epoch, root, stage, entry, index=index: events.append((index, epoch, stage, entry))
            )

        def show_progress() -> None:
            """Each stage the first time any operator reaches it (the relayer is the one that sees `submitted`)."""
            while events:
                index, epoch, stage, entry = events.pop(0)
                if epoch <= receipt.epoch or (epoch, stage) in seen:
                    continue
                seen.add((epoch, stage))
                detail = {
                    "signed": f"{entry['signatures']} of {entry['operators']} signatures",
                    "quorum": f"{entry['signatures']} of {entry['operators']} signatures (threshold {entry['threshold']})",
                    "submitted": f"tx {entry['txHashes'][-1][:14]}…" if entry["txHashes"] else "",
                    "recorded": f"in block {entry['recordedBlock']}",
                    "final": f"{cluster.chains[index].settings.checkpointer.confirmations} confirmation(s) deep",
                }.get(stage, entry.get("waiting") or "")
                t("checkpoint", f"epoch {epoch} {stage:<9} {detail} [op{index + 1}] "
                  f"(root {entry['root'][:10]}…, L1 block {entry['l1Block']})")

        async def recorded_proof():
            show_progress()
            async with http.get(f"{cluster.api_urls[0]}/v1/proofs/withdrawal/{address['bob']}/{token}") as resp:
                if resp.status != 200:
                    return None
                doc = await resp.json()
            if int(doc["epoch"]) <= receipt.epoch or not doc["included"]:
                return None
            if cluster.exchange.functions.checkpoint_root(int(doc["epoch"])).call() != bytes.fromhex(doc["root"][2:]):
                return None
            return doc

        doc = await _eventually(recorded_proof, 120, 0.1)
        proof_epoch = int(doc["epoch"])
        await asyncio.sleep(cluster.chains[0].settings.checkpointer.tick_s * 2)  # let the checkpointers see it too
        show_progress()
        proof = LeafProof.from_api(doc, address["bob"], token)
        t("settlement", f"proof for bob's withdrawable {int(doc['cumulative']) // DOLLAR} USDX against recorded epoch {proof_epoch}")
        payout = claim(cluster.w3, cluster.exchange, cluster.token, proof, Sender(cluster.w3.eth.accounts[0]))
        t("settlement", f"claim paid {payout.paid // DOLLAR} USDX to bob (tx 0x{payout.tx_hash.hex()[:12]}…): "
          f"wallet {payout.trader_balance_before // DOLLAR} → {payout.trader_balance_after // DOLLAR} USDX")
        again = claim(cluster.w3, cluster.exchange, cluster.token, proof, Sender(cluster.w3.eth.accounts[0]))
        t("settlement", f"a second claim with the same proof pays {again.paid} (claims are cumulative)")

        async def final():
            show_progress()
            return (proof_epoch, "final") in seen

        try:
            await _eventually(final, 30, 0.1)
        except TimeoutError:
            pass

        # ---- a forced request: through L1, when the operators would not take a signed one ----------------------
        forced_amount = 100 * DOLLAR
        cluster.w3.eth.send_transaction({"from": cluster.w3.eth.accounts[0], "to": address["alice"], "value": 10**18})
        forced = force_request(
            cluster.w3, cluster.exchange,
            pr.WithdrawIntent(bytes.fromhex(address["alice"][2:]), pr.strategy_id("main"), bytes.fromhex(token[2:]), forced_amount, 0, 0),
            Sender.from_key(keys["alice"]),
        )
        left = forced.deadline - cluster.w3.eth.get_block(forced.block_number)["timestamp"]
        t("chain", f"alice forces a withdrawal of {forced_amount // DOLLAR} USDX through L1 (forced request "
          f"{forced.seq}, block {forced.block_number}): a checkpoint must cover it within {left / 3600:.0f} h, "
          f"or anyone may freeze the exchange")

        async def forced_taken():
            state = await client.trader_state(bytes.fromhex(address["alice"][2:]))
            return any(int(b["withdrawable"]) >= forced_amount for b in state.get("balances", []))

        await _eventually(forced_taken, 60)
        t("chain", "the engine took alice's forced withdrawal with its L1 block, as it would her signed request")

        async def replica_audited():
            async with http.get(f"{replica.url}/v1/status") as resp:
                status = await resp.json()
            recorded = status["checkpoint"]["lastRecordedEpoch"]
            return recorded if recorded is not None and recorded >= proof_epoch else None

        audited = await _eventually(replica_audited, 60, 0.1)
        t("replica", f"replayed every request and agrees with the root recorded for epoch {audited}; "
          f"proofs are served from it as from an operator")
        summary.update(forced_seq=forced.seq, replica_audited_epoch=audited)
        summary.update(
            claimed=payout.paid,
            second_claim=again.paid,
            epoch=proof_epoch,
            receipt_ms_max=max(summary["receipt_ms"]),
        )
        t("summary", f"receipts: {len(summary['receipt_ms'])}, slowest {summary['receipt_ms_max']:.1f} ms; "
          f"checkpoint of epoch {proof_epoch} recorded and claimed; status: {cluster.status_line()}")
    return summary
