"""Gas of the ddx exchange on py-evm: whole-transaction gas from receipts (21,000 + calldata + execution).

Also the inbox (issue 10): a forced request, a steady deposit (65,000 budget), a checkpoint covering the head
against the figures before the inbox (+5,000 budget), and checkpoints 1 and 10 entries behind the head.

    python benchmarks/gas.py [--json] [--sizes 1000,1000000]

Measures checkpoint submission with 3, 4, 7, 10 and 16 operators at the smallest threshold above 2/3 (and the
same with the operator set in a storage mapping, the scheme not chosen), claims with proofs from real state trees
(ddx_offchain.tree.StateTree) of 1,000 and 1,000,000 items, a deposit and an escape withdrawal. Steady-state
figures are the headline (storage slots already non-zero, as for a returning trader); first-time figures, which
pay 20,000 more per storage slot created, are reported next to them. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account  # noqa: E402

from ddx_offchain.deployment.artifacts import compile_path  # noqa: E402
from ddx_offchain.deployment.deploy import CollateralSpec, DeployConfig, deploy_exchange, dev_operator_keys  # noqa: E402
from ddx_offchain.deployment.embedded import Web3Deployer, embedded_web3  # noqa: E402
from ddx_offchain.protocol import inbox as ib  # noqa: E402
from ddx_offchain.protocol import items  # noqa: E402
from ddx_offchain.protocol import operator_messages as om  # noqa: E402
from ddx_offchain.protocol import requests as pr  # noqa: E402
from ddx_offchain.protocol.hashing import keccak256  # noqa: E402
from ddx_offchain.protocol.inbox import InboxCursor  # noqa: E402
from ddx_offchain.tree import StateTree  # noqa: E402

OPERATOR_COUNTS = (3, 4, 7, 10, 16)
TREE_SIZES = (1_000, 1_000_000)
TARGETS = {
    "checkpoint_base": 50_000, "checkpoint_per_signature": 7_000, "claim_1000000": 90_000, "deposit": 65_000,
    "forced_request": 60_000,
}
# Before the inbox (commit 467bff1): the checkpoint's budget is these plus 5,000 (issue 10).
CHECKPOINT_BEFORE_INBOX = {"3": 74_302, "4": 74_910, "7": 86_422, "10": 97_884, "16": 120_866}
PEERS = {"polygon_pos_per_signature": 18_000, "blobstream_30_of_100_signers": 329_000}
ESCAPE_DELAY = 7 * 86400


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    def __init__(self):
        self.w3 = embedded_web3()
        self.deployer = Web3Deployer(self.w3)
        self.sender = self.w3.eth.accounts[0]

    def gas(self, call, sender=None) -> int:
        tx = call.transact({"from": sender or self.sender, "gas": 5_000_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt.status != 1:
            raise RuntimeError(f"transaction reverted: {call.fn_name}")
        return receipt.gasUsed

    def anchor(self) -> tuple[int, bytes]:
        self.w3.testing.mine(1)
        block = self.w3.eth.get_block(self.w3.eth.block_number - 1)
        return block.number, bytes(block.hash)

    def deploy(self, keys: list[str], capacity: int = 10**30):
        members = tuple(Account.from_key(k).address for k in keys)
        config = DeployConfig(
            operators=members,
            threshold=om.smallest_supermajority(len(members)),
            collateral=(CollateralSpec(None, capacity, 86400),),
            escape_delay=ESCAPE_DELAY,
        )
        manifest = deploy_exchange(self.deployer, config, local=True, log=lambda _: None)
        exchange = self.deployer.contract("Exchange", manifest.exchange)
        token = self.deployer.contract("MockERC20", manifest.mock_token)
        return exchange, token, om.OperatorSet(1, config.threshold, config.operators)

    def checkpoint(self, exchange, operator_set, keys, epoch: int, root: bytes) -> int:
        """A checkpoint covering the whole inbox (the steady case: the engine is caught up with L1)."""
        number, block_hash = self.anchor()
        deposits, forced, acc = exchange.functions.inbox_head().call()
        message = om.Checkpoint(operator_set.id, epoch, root, number, block_hash, InboxCursor(deposits, forced, bytes(acc)))
        domain = om.Domain(self.w3.eth.chain_id, exchange.address)
        quorum = om.sign_quorum(message, domain, operator_set, keys[: operator_set.threshold])
        return self.gas(
            exchange.functions.submit_checkpoint(
                epoch, root, number, block_hash, message.inbox.as_abi(), operator_set.as_abi(), *quorum.as_abi()
            )
        )


def measure_checkpoints(bench: Bench) -> tuple[dict, dict]:
    chosen, mapping = {}, {}
    variant = compile_path("tests/harness/QuorumMappingVariant.vy")
    for count in OPERATOR_COUNTS:
        keys = dev_operator_keys(count)
        exchange, _, operator_set = bench.deploy(keys)
        bench.checkpoint(exchange, operator_set, keys, 1, keccak256(b"first"))
        chosen[str(count)] = bench.checkpoint(exchange, operator_set, keys, 2, keccak256(b"second"))
        # the same checkpoint against the storage-mapping twin
        factory = bench.w3.eth.contract(abi=variant.abi, bytecode=variant.bytecode)
        receipt = bench.w3.eth.wait_for_transaction_receipt(
            factory.constructor(list(operator_set.members), operator_set.threshold).transact({"from": bench.sender})
        )
        twin = bench.w3.eth.contract(address=receipt.contractAddress, abi=variant.abi)
        domain = om.Domain(bench.w3.eth.chain_id, twin.address)
        for epoch in (1, 2):
            number, block_hash = bench.anchor()
            message = om.Checkpoint(1, epoch, keccak256(b"root %d" % epoch), number, block_hash)
            signatures = b"".join(om.sign(message, domain, k) for k in keys[: operator_set.threshold])  # ascending
            used = bench.gas(twin.functions.submit_checkpoint(epoch, message.state_root, number, block_hash, signatures))
        mapping[str(count)] = used
        log(f"checkpoint n={count} t={operator_set.threshold}: commitment {chosen[str(count)]}, mapping {used}")
    return chosen, mapping


def build_tree(size: int, reserved: int) -> StateTree:
    """A tree of `size - reserved` filler items plus room for `reserved`. The filler are all WITHDRAWAL-kind keys
    (random below the kind byte, as real keys are): the claimed leaf then shares its first byte with every other
    item, the deepest case for a tree of this size (a tree of mixed kinds gives shorter withdrawal proofs)."""
    filler = size - reserved
    keys = (bytes([items.Kind.WITHDRAWAL]) + keccak256(b"filler %d" % i)[1:] for i in range(filler))
    return StateTree.from_items(((k, k) for k in keys), keep_values=False)


def measure_custody(bench: Bench, sizes) -> dict:
    keys = dev_operator_keys(4)
    exchange, token, operator_set = bench.deploy(keys)
    accounts = bench.w3.eth.accounts
    out = {"claim_gas": {}, "claim_first_gas": {}, "proof_depth": {}}

    def fund(who, amount):
        bench.gas(token.functions.mint(who, amount), who)
        bench.gas(token.functions.approve(exchange.address, 2**256 - 1), who)

    depositor = accounts[1]
    fund(depositor, 10**15)
    out["deposit_first_gas"] = bench.gas(exchange.functions.deposit(token.address, 10**12), depositor)
    out["deposit_gas"] = bench.gas(exchange.functions.deposit(token.address, 10**12), depositor)
    log(f"deposit: first ever {out['deposit_first_gas']}, steady {out['deposit_gas']}")
    # a forced withdrawal (the largest common forced request after a PlaceOrder) and a forced close
    withdraw = pr.forced_fields(pr.WithdrawIntent(b"\x01" * 20, pr.strategy_id("main"), bytes.fromhex(token.address[2:]), 10**9, 0, 0))
    close = pr.forced_fields(pr.PlaceOrder(b"\x01" * 20, pr.strategy_id("main"), b"ETHP".ljust(32, b"\0"), 1, 3, 0, 10**6, True, 0, 0))
    out["forced_request_gas"] = bench.gas(exchange.functions.force_request(*withdraw), depositor)
    out["forced_close_gas"] = bench.gas(exchange.functions.force_request(*close), depositor)
    log(f"forced request: withdraw {out['forced_request_gas']}, reduce-only close {out['forced_close_gas']}")

    # a checkpoint whose state is behind the inbox head by 1 and by 10 deposits (the leaves after it in calldata)
    epoch = 0
    for behind in (1, 10):
        cursor = InboxCursor(*exchange.functions.inbox_head().call())
        cursor = InboxCursor(cursor.deposits, cursor.forced, bytes(cursor.acc))
        leaves = []
        for _ in range(behind):
            bench.gas(exchange.functions.deposit(token.address, 10**6), depositor)
            seq = exchange.functions.deposit_count().call()
            leaves.append(ib.deposit_leaf(seq, bytes.fromhex(depositor[2:]), pr.strategy_id("main"), bytes.fromhex(token.address[2:]), 10**6))
        epoch += 1
        number, block_hash = bench.anchor()
        message = om.Checkpoint(operator_set.id, epoch, keccak256(b"behind"), number, block_hash, cursor)
        quorum = om.sign_quorum(message, om.Domain(bench.w3.eth.chain_id, exchange.address), operator_set, keys[: operator_set.threshold])
        out[f"checkpoint_{behind}_behind_gas"] = bench.gas(exchange.functions.submit_checkpoint_with_leaves(
            epoch, message.state_root, number, block_hash, cursor.as_abi(), leaves, operator_set.as_abi(), *quorum.as_abi()
        ))
        log(f"checkpoint (4 operators) {behind} entries behind the head: {out[f'checkpoint_{behind}_behind_gas']}")

    escapee = accounts[9]
    fund(escapee, 10**6)
    bench.gas(exchange.functions.deposit(token.address, 1_000), escapee)  # credited: BALANCE (700, 1000) + 300 withdrawn
    for index, size in enumerate(sizes):
        trader = accounts[2 + index]
        fund(trader, 10**6)  # the trader keeps a wallet balance, as a returning trader does
        # every claimant deposited the token it withdraws (collateral is per token), so its packed
        # (deposited, claimed) slot is already non-zero at its first claim
        bench.gas(exchange.functions.deposit(token.address, 100), trader)
        started = time.perf_counter()
        tree = build_tree(size, reserved=3 if size == max(sizes) else 1)
        key = items.withdrawal_key(trader, token.address)
        tree.put(key, items.withdrawal_value(trader, token.address, 100))
        if size == max(sizes):
            tree.put(items.balance_key(escapee, token.address), items.balance_value(escapee, token.address, 700, 1_000))
            tree.put(items.withdrawal_key(escapee, token.address), items.withdrawal_value(escapee, token.address, 300))
        assert len(tree) == size
        epoch += 1
        bench.checkpoint(exchange, operator_set, keys, epoch, tree.root())
        proof = tree.prove(key)
        log(f"tree of {size:,} items built in {time.perf_counter() - started:.1f}s; proof depth {len(proof.siblings)}")
        out["claim_first_gas"][str(size)] = bench.gas(
            exchange.functions.claim(trader, token.address, 100, epoch, list(proof.siblings))
        )
        tree.put(key, items.withdrawal_value(trader, token.address, 250))
        epoch += 1
        bench.checkpoint(exchange, operator_set, keys, epoch, tree.root())
        proof = tree.prove(key)
        out["proof_depth"][str(size)] = len(proof.siblings)
        out["claim_gas"][str(size)] = bench.gas(exchange.functions.claim(trader, token.address, 250, epoch, list(proof.siblings)))
        log(f"claim at {size:,} items: first {out['claim_first_gas'][str(size)]}, steady {out['claim_gas'][str(size)]}")
        if size == max(sizes):
            bench.gas(exchange.functions.deposit(token.address, 50), escapee)  # after the last checkpoint
            tester = bench.w3.provider.ethereum_tester
            tester.time_travel(bench.w3.eth.get_block("latest").timestamp + ESCAPE_DELAY + 1)
            bench.w3.testing.mine(1)
            bench.gas(exchange.functions.freeze())
            balance_proof = tree.prove(items.balance_key(escapee, token.address))
            withdrawal_proof = tree.prove(items.withdrawal_key(escapee, token.address))
            out["escape_gas"] = bench.gas(
                exchange.functions.escape(
                    escapee, token.address, 700, 1_000, list(balance_proof.siblings),
                    300, list(withdrawal_proof.siblings), b"\0" * 32, b"\0" * 32,
                )
            )
            out["escape_tree_items"] = size
            log(f"escape (balance + later deposit + withdrawable, {size:,}-item tree): {out['escape_gas']}")
    return out


def per_signature_slope(checkpoints: dict) -> int:
    """Least-squares gas per extra signature across the measured operator counts."""
    xs = [om.smallest_supermajority(int(n)) for n in checkpoints]
    ys = list(checkpoints.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return round(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON summary on stdout")
    parser.add_argument("--sizes", default=",".join(map(str, TREE_SIZES)), help="tree sizes for claims (comma-separated)")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))

    bench = Bench()
    checkpoints, mapping = measure_checkpoints(bench)
    custody = measure_custody(bench, sizes)
    slope = per_signature_slope(checkpoints)
    targets_met = {
        "checkpoint": {
            n: gas <= TARGETS["checkpoint_base"] + TARGETS["checkpoint_per_signature"] * om.smallest_supermajority(int(n))
            for n, gas in checkpoints.items()
        },
        "claim_1000000": custody["claim_gas"].get("1000000", 0) <= TARGETS["claim_1000000"] if "1000000" in custody["claim_gas"] else None,
        "deposit": custody["deposit_gas"] <= TARGETS["deposit"],
        "forced_request": max(custody["forced_request_gas"], custody["forced_close_gas"]) <= TARGETS["forced_request"],
        "checkpoint_vs_before_inbox": {
            n: gas <= CHECKPOINT_BEFORE_INBOX[n] + 5_000 for n, gas in checkpoints.items() if n in CHECKPOINT_BEFORE_INBOX
        },
    }
    summary = {
        "checkpoint_gas": checkpoints,
        "checkpoint_gas_mapping_scheme": mapping,
        "checkpoint_thresholds": {n: om.smallest_supermajority(int(n)) for n in checkpoints},
        "checkpoint_gas_per_signature": slope,
        "claim_gas": custody["claim_gas"],
        "claim_first_gas": custody["claim_first_gas"],
        "proof_depth": custody["proof_depth"],
        "deposit_gas": custody["deposit_gas"],
        "deposit_first_gas": custody["deposit_first_gas"],
        "forced_request_gas": custody["forced_request_gas"],
        "forced_close_gas": custody["forced_close_gas"],
        "checkpoint_gas_before_inbox": CHECKPOINT_BEFORE_INBOX,
        "checkpoint_1_behind_gas": custody["checkpoint_1_behind_gas"],
        "checkpoint_10_behind_gas": custody["checkpoint_10_behind_gas"],
        "escape_gas": custody.get("escape_gas"),
        "targets": TARGETS,
        "targets_met": targets_met,
        "peers": PEERS,
        "blobstream_ratio_30_signatures": round((slope * 30 + checkpoints["3"] - slope * 3) / PEERS["blobstream_30_of_100_signers"], 3),
        "polygon_ratio_per_signature": round(slope / PEERS["polygon_pos_per_signature"], 3),
        "chain": "py-evm (eth-tester), Prague rules; gas = receipt gasUsed",
    }
    if not args.json:
        for key, value in summary.items():
            print(f"{key}: {value}")
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
