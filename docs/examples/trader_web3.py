"""A trader's own script against `ddx devnet` (docs/devnet.md): web3.py for the chain, the ddx SDK for signed
requests, receipts and proofs. Run `ddx devnet` in another terminal, then `python docs/examples/trader_web3.py`.

It funds nothing itself: the devnet funded its dev accounts (keys printed, dev-only). Steps: deposit, watch the
index price move, trade (alice's sell fills bob's buy), request a withdrawal, wait for a recorded checkpoint that
covers it, claim it on-chain. Exits non-zero on any failure (CI runs it: tests/chain/test_devnet_outside.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from eth_account import Account
from web3 import Web3

from ddx_offchain.client import DdxClient, Trader
from ddx_offchain.client.claims import Sender
from ddx_offchain.client.settlement import Settlement
from ddx_offchain.deployment.manifest import load_manifest
from ddx_offchain.protocol.eip712 import Domain

ERC20 = [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
]
EXCHANGE = [
    {"type": "function", "name": "deposit", "stateMutability": "nonpayable",
     "inputs": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}], "outputs": []},
    {"type": "function", "name": "operators", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address[]"}]},
]
DOLLAR = 10**6  # the mock collateral has 6 decimals
TICK = 10_000  # ETHP's price tick in the devnet genesis (0.01)


def send(w3: Web3, call, key: str) -> dict:
    sender = Account.from_key(key).address
    tx = call.build_transaction({"from": sender, "nonce": w3.eth.get_transaction_count(sender, "pending")})
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(Account.sign_transaction(tx, key).raw_transaction))
    if receipt["status"] != 1:
        raise SystemExit(f"transaction from {sender} reverted")
    return receipt


async def wait_for(what: str, check, timeout_s: float = 90.0, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every_s)
    raise SystemExit(f"timed out waiting for {what}")


async def main() -> None:
    info = json.loads(Path(os.environ.get("DDX_DEVNET_INFO") or Path.home() / ".ddx" / "devnet.json").read_text())
    w3 = Web3(Web3.HTTPProvider(info["rpc"]))
    manifest = load_manifest(info["manifest"])
    domain = Domain.of(info["chainId"], info["exchange"])
    alice_key, bob_key = info["devAccounts"][0]["privateKey"], info["devAccounts"][1]["privateKey"]
    token = w3.eth.contract(address=info["collateral"], abi=ERC20)
    exchange = w3.eth.contract(address=info["exchange"], abi=EXCHANGE)

    # 1. deposit from each wallet (approve, then deposit into the default strategy "main")
    for key in (alice_key, bob_key):
        send(w3, token.functions.approve(info["exchange"], 10_000 * DOLLAR), key)
        send(w3, exchange.functions.deposit(info["collateral"], 10_000 * DOLLAR), key)
    print("deposited 10,000 for alice and bob")

    # receipts are checked against the operator set recorded on-chain, not against what an API says
    operators = {bytes.fromhex(a[2:]) for a in exchange.functions.operators().call()}
    async with DdxClient(info["apis"], domain, operators) as client:
        settlement = Settlement.connect(client, info["rpc"], manifest)
        alice, bob = Trader(bytes.fromhex(alice_key[2:]), domain), Trader(bytes.fromhex(bob_key[2:]), domain)

        async def credited():
            states = [await client.trader_state(t.address) for t in (alice, bob)]
            return all(int(s["strategies"][0]["collateral"]) >= 10_000 * DOLLAR for s in states if s["strategies"]) and \
                all(s["strategies"] for s in states)

        await wait_for("the deposits to be credited", credited)
        print("the operators credited both deposits")

        # 2. the index price moves (a mock Chainlink aggregator on a random walk, read by every operator's feed)
        async def index():
            return int((await client.market("ETHP"))["index"])

        first = await wait_for("an index price", index)

        async def moved():
            return (await index()) != first

        await wait_for("the index price to move", moved)
        price = await index()
        print(f"index price moved: {first / DOLLAR:.2f} -> {price / DOLLAR:.2f}")

        # 3. trade: alice's sell rests, bob's buy at the same price fills it
        at = price // TICK * TICK
        size = 10**5  # 0.1 contract
        sell = await client.submit(alice.place_order("ETHP", 1, size, at))
        buy = await client.submit(bob.place_order("ETHP", 0, size, at))
        print(f"orders sequenced at request indexes {sell.request_index} and {buy.request_index}")

        async def filled():
            positions = (await client.trader_state(bob.address))["positions"]
            return any(int(p["size"]) == size for p in positions)

        await wait_for("the fill", filled)
        print("bob's buy filled alice's sell: bob is long 0.1 ETHP")

        # 4. withdraw: sequenced now (receipt), claimable once a checkpoint covering it is recorded on-chain
        receipt = await settlement.request_withdrawal(alice, info["collateral"], 1_000 * DOLLAR)
        print(f"withdrawal receipted in epoch {receipt.epoch}; waiting for a recorded checkpoint")
        proof = await settlement.claimable_proof(Account.from_key(alice_key).address, info["collateral"], wait_s=120)
        if proof is None:
            raise SystemExit("no recorded checkpoint covered the withdrawal")
        print(f"checkpoint of epoch {proof.epoch} recorded on-chain; proof verified")

        # 5. claim on-chain with the proof
        before = token.functions.balanceOf(Account.from_key(alice_key).address).call()
        payout = settlement.claim(proof, Sender.from_key(bytes.fromhex(alice_key[2:])))
        after = token.functions.balanceOf(Account.from_key(alice_key).address).call()
        if payout.paid != 1_000 * DOLLAR or after - before != payout.paid:
            raise SystemExit(f"claim paid {payout.paid}, wallet moved {after - before}")
        print(f"claimed {payout.paid / DOLLAR:,.0f}: alice's wallet {before / DOLLAR:,.0f} -> {after / DOLLAR:,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
