"""The alerting rules shipped in docs/prometheus-alerts.yml, evaluated against a real 4-operator cluster's
/metrics: silent while checkpoints are recorded; after a total relay failure (every relayer out of gas) the
checkpoint rules fire. The evaluator below understands exactly the expression forms the rules use (a metric or an
increase() over two scrapes, compared with a number, joined by `and`) and refuses any other form, so a rule it
cannot check fails the test instead of passing unread."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

import aiohttp
import yaml
from eth_account import Account
from polling import eventually

from ddx_offchain.devnet.cluster import start_cluster

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus-alerts.yml"
TERM = re.compile(r"^(?:increase\((?P<inc>\w+)\[\d+[smh]\]\)|(?P<metric>\w+))\s*(?P<op>>=|>|==|<=|<)\s*(?P<n>[0-9.]+)$")
OPS = {">=": float.__ge__, ">": float.__gt__, "==": float.__eq__, "<=": float.__le__, "<": float.__lt__}


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def fires(expr: str, before: dict[str, float], now: dict[str, float]) -> bool:
    """`expr` over two scrapes (the increase window covers the time between them)."""
    result = True
    for term in expr.split(" and "):
        match = TERM.match(term.strip())
        assert match, f"the test cannot evaluate {term!r}: keep the rules to the forms it knows or extend it"
        if match["inc"]:
            value = now.get(match["inc"], 0.0) - before.get(match["inc"], 0.0)
        else:
            value = now.get(match["metric"])
            if value is None:
                return False  # no such series on this operator: nothing fires
        result = result and OPS[match["op"]](value, float(match["n"]))
    return result


def rules() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def test_checkpoint_alerts_fire_on_a_total_relay_failure_and_not_before(tmp_path):
    async def scenario():
        cluster = await start_cluster(tmp_path, operators=4, epoch_interval_s=1.0, echo=lambda _: None)
        try:
            key = b"\x42" * 32
            cluster.fund(Account.from_key(key).address, 10**9)
            cluster.deposit(key, 10**6)  # an L1 block to anchor epochs
            await eventually(lambda: cluster.exchange.functions.latest_epoch().call() >= 1, "a recorded checkpoint",
                             timeout_s=60)
            url = cluster.api_urls[0]

            async def scrape() -> dict[str, float]:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"{url}/metrics") as resp:
                        return parse_metrics(await resp.text())

            healthy = [await scrape()]
            await asyncio.sleep(3)
            healthy.append(await scrape())
            for name, expr in rules().items():
                assert not fires(expr, *healthy), f"{name} fires on a healthy cluster"

            # every relayer (each operator relays with its own key) loses its gas money
            w3 = cluster.w3
            for operator_key in cluster.operator_keys:
                sender = Account.from_key(operator_key).address
                for _ in range(10):  # the operator may relay (and spend) between our read and our send: retry
                    base = w3.eth.get_block("latest")["baseFeePerGas"]
                    max_fee = 2 * base  # what is left: 21,000 x (max fee - base fee), far below a relay's gas
                    value = w3.eth.get_balance(sender) - 21_000 * max_fee
                    if value <= 0:
                        break
                    tx = {"to": "0x000000000000000000000000000000000000dEaD", "value": value, "gas": 21_000, "maxFeePerGas": max_fee,
                          "maxPriorityFeePerGas": 0, "nonce": w3.eth.get_transaction_count(sender, "pending"),
                          "chainId": w3.eth.chain_id, "type": 2}
                    try:
                        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(
                            Account.sign_transaction(tx, operator_key).raw_transaction))
                    except ValueError:
                        continue  # its relay took the nonce or the funds first
                    if receipt["status"] == 1:
                        break
                assert w3.eth.get_balance(sender) < 100_000 * w3.eth.get_block("latest")["baseFeePerGas"], \
                    "the relayer still has the gas money of a relay"
            for chain in cluster.chains:  # freeze the next epochs without waiting 30 s for the unrecordable ones
                chain.settings = dataclasses.replace(chain.settings, epoch_max_wait_s=1.0)
            recorded = cluster.exchange.functions.latest_epoch().call()
            before = await scrape()

            async def both_fire():
                now = await scrape()
                table = rules()
                firing = [n for n in ("DdxCheckpointsNotRecorded", "DdxCheckpointRelayFailing") if fires(table[n], before, now)]
                return now if len(firing) == 2 else None

            now = await eventually(both_fire, "both checkpoint alerts firing", timeout_s=90)
            assert cluster.exchange.functions.latest_epoch().call() == recorded  # nothing recorded since
            assert now["ddx_checkpoint_relay_attempts_failed_total"] > before["ddx_checkpoint_relay_attempts_failed_total"]
            assert not fires(rules()["DdxPriceContradicted"], before, now)  # a relay failure is not a price refusal
        finally:
            await cluster.stop()

    asyncio.run(scenario())
