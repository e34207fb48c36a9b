"""State-tree benchmark (issue 3): build, batch re-hash, proofs, memory, snapshots, and the keccak backends.

    python benchmarks/tree.py --json            # 1,000,000 items; the last line is one JSON object
    python benchmarks/tree.py --items 100000    # smaller, for a quick look
    DDX_PURE_PYTHON=1 python benchmarks/tree.py --json   # the pure-Python reference (tree_kernels says which ran)
    python benchmarks/tree.py --json --rehash-only --rounds 15   # only the 10,000-update root (the issue's target)

Items are random 32-byte keys (first byte a kind, as real keys) with 128-byte values, the size of a WITHDRAWAL
or BALANCE item. Times are wall-clock (perf_counter) with the process CPU time beside them, because the
reference machine is shared: CPU time is what the code costs, wall time what a caller waited. Repeated phases
report the median run (the re-hash also its best, least disturbed, run). Memory is counted two ways: `bytes_per_item` adds up the sizes of every object the tree
holds (what tracemalloc would count, without its tracing overhead), for the hash-only tree (keep_values=False:
the commitment structure itself) and for the default tree that also keeps values; `rss_bytes_per_item` is the
process's resident-memory growth across the build (allocator slack included, but not the key and value objects
the caller already held, which the tree shares).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddx_offchain.protocol.hashing import KECCAK_BACKEND  # noqa: E402
from ddx_offchain.protocol.proof import verify_inclusion  # noqa: E402
from ddx_offchain.tree import StateTree, decode_snapshot, encode_snapshot, kernels  # noqa: E402

VALUE_BYTES = 128
UPDATES = 10_000
PROOFS = 10_000
ENGINE_TREE_ITEMS = 50_000  # the engine's batch: ~1,300 dirty items per root (benchmarks/engine.py)
ENGINE_DIRTY = 1_300
TARGETS = {
    "build_s": 15.0,
    "root_after_10k_updates_ms": 150.0,
    "proof_gen_us": 100.0,
    "bytes_per_item": 400.0,
    "avg_proof_siblings": 30.0,
}
# Issue 11 tightened the re-hash target: root after 10,000 updates of a 1M-item tree within 100 ms, judged like
# issue 3's on the median wall time (what a caller waits); the CPU median is reported beside it because the
# machine is shared.
ISSUE_11_ROOT_MS = 100.0


def keccak_backends(input_bytes: int = 65, rounds: int = 200_000) -> dict[str, float]:
    """Microseconds per keccak256 of a 65-byte input (a tree node's preimage), for every backend installed."""
    data = b"\x01" * input_bytes
    candidates = {}
    try:
        from tiny_keccak import keccak256 as tiny

        candidates["tiny-keccak"] = lambda: tiny(data)
    except ImportError:
        pass
    try:
        from sha3 import keccak_256

        candidates["safe-pysha3"] = lambda: keccak_256(data).digest()
    except ImportError:
        pass
    try:
        from Crypto.Hash import keccak

        candidates["pycryptodome"] = lambda: keccak.new(data=data, digest_bits=256).digest()
    except ImportError:
        pass
    try:
        from eth_hash.auto import keccak as eth_keccak

        candidates["eth-hash (auto backend)"] = lambda: eth_keccak(data)
    except ImportError:
        pass
    out = {}
    for name, fn in candidates.items():
        n = rounds if name in ("tiny-keccak", "safe-pysha3") else rounds // 10
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - start) / n)
        out[name] = round(best * 1e6, 3)
    return out


def vyper_gas_by_depth(depths=(0, 1, 8, 16, 20, 24, 26, 28, 32, 64, 128, 256)) -> dict[str, dict[str, int]]:
    """Execution gas of the Vyper verifier (state_proof.vy via the test harness, py-evm) per proof depth.

    `withdrawal_root` is what a claim runs (key and value hash derived on-chain, then the fold); calldata is
    extra at the transaction level: 16 gas per non-zero byte, 4 per zero byte, so 512 gas per random sibling
    and 128 per EMPTY one.
    """
    import boa

    harness = boa.load(str(Path(__file__).resolve().parent.parent / "tests" / "harness" / "StateProofHarness.vy"))
    rnd = random.Random(0)
    out = {}
    for depth in depths:
        siblings = [rnd.randbytes(32) for _ in range(depth)]
        harness.withdrawal_root("0x" + "11" * 20, "0x" + "22" * 20, 5, siblings)
        withdrawal = harness._computation.get_gas_used()
        harness.root_of_inclusion(rnd.randbytes(32), rnd.randbytes(32), siblings)
        fold = harness._computation.get_gas_used()
        out[str(depth)] = {"withdrawal_root": withdrawal, "root_of_inclusion": fold}
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def deep_size(tree: StateTree) -> int:
    """Bytes of every object the tree holds, each shared object counted once."""
    seen: set[int] = set()
    total = 0
    for container in (tree._items, tree._nodes.branch, tree._nodes.leaf_at, tree._pending):
        if container is None:
            continue
        total += sys.getsizeof(container)
        if isinstance(container, (dict, set)):
            objects = container.items() if isinstance(container, dict) else ((k, None) for k in container)
        else:  # the compiled PosMap: its int keys live inside its table (counted by getsizeof), not as objects
            objects = ((None, v) for _, v in container.items())
        for k, v in objects:
            for obj in (k, v):
                if obj is not None and id(obj) not in seen:
                    seen.add(id(obj))
                    total += sys.getsizeof(obj)
    return total


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def make_items(n: int, rnd: random.Random) -> dict[bytes, bytes]:
    items = {}
    while len(items) < n:
        key = bytes([rnd.randrange(1, 14)]) + rnd.randbytes(31)
        items[key] = rnd.randbytes(VALUE_BYTES)
    return items


def engine_sized_batches(rnd: random.Random, n: int = ENGINE_TREE_ITEMS, dirty: int = ENGINE_DIRTY, runs: int = 21):
    """What the engine asks of the tree: a root every 1,000 requests, each batch about 1,300 changed items
    (benchmarks/engine.py) in a tree of tens of thousands. Value updates of existing keys, values kept."""
    items = make_items(n, rnd)
    keys = list(items)
    tree = StateTree.from_items(items)
    put_us, root_ms, root_cpu_ms, changed = [], [], [], []
    for _ in range(runs):
        updates = [(keys[rnd.randrange(n)], rnd.randbytes(VALUE_BYTES)) for _ in range(dirty)]

        def apply():
            for k, v in updates:
                tree.put(k, v)

        _, _, put_cpu = timed(apply)
        changed.append(len(tree._pending))  # a few keys repeat within a batch
        _, wall, cpu = timed(tree.root)
        put_us.append(put_cpu / dirty * 1e6)
        root_ms.append(wall * 1e3)
        root_cpu_ms.append(cpu * 1e3)
    return {
        "engine_batch_tree_items": n,
        "root_after_1300_updates_ms": round(statistics.median(root_ms), 2),
        "root_after_1300_updates_cpu_ms": round(statistics.median(root_cpu_ms), 2),
        "root_after_1300_updates_best_cpu_ms": round(min(root_cpu_ms), 2),
        "root_after_1300_updates_cpu_us_per_dirty_item": round(
            statistics.median(root_cpu_ms) * 1e3 / statistics.median(changed), 2
        ),
        "put_cpu_us": round(statistics.median(put_us), 3),
    }


def compiled_vs_pure(rnd: random.Random, n: int = ENGINE_TREE_ITEMS, dirty: int = ENGINE_DIRTY, rounds: int = 15):
    """The engine's batch on two trees holding the same items, one per kernel set, measured alternately in this
    process (same updates, same machine load): CPU ms per root, median and best, and the ratio."""
    if kernels.COMPILED is None:
        return {"compiled_vs_pure": "compiled kernels not built"}
    items = make_items(n, rnd)
    keys = list(items)
    trees = {k.name: StateTree.from_items(items, kernels=k) for k in (kernels.PURE, kernels.COMPILED)}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(rounds):
        updates = [(keys[rnd.randrange(n)], rnd.randbytes(VALUE_BYTES)) for _ in range(dirty)]
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in order:
            tree = trees[name]
            for k, v in updates:
                tree.put(k, v)
            _, _, c = timed(tree.root)
            cpu[name].append(c * 1e3)
    roots = {t.root() for t in trees.values()}
    assert len(roots) == 1, "compiled and pure trees disagree"
    out = {
        f"{name}_cpu_ms": {"median": round(statistics.median(v), 2), "best": round(min(v), 2)} for name, v in cpu.items()
    }
    out["pure_over_compiled_median"] = round(
        statistics.median(cpu["pure-python"]) / statistics.median(cpu["compiled"]), 2
    )
    return {"compiled_vs_pure_1300_updates_50k_items": out}


def issue_11(result: dict) -> dict:
    return {
        "issue_11_root_after_10k_updates_target_ms": ISSUE_11_ROOT_MS,
        "meets_issue_11_root_target": result["root_after_10k_updates_ms"] <= ISSUE_11_ROOT_MS,
        "meets_issue_11_root_target_on_cpu": result["root_after_10k_updates_cpu_ms"] <= ISSUE_11_ROOT_MS,
    }


def rehash_only(n: int, seed: int, rounds: int) -> dict:
    """Only the phase of the issue's target: build n items, then `rounds` batches of 10,000 value updates, each
    timed in root(); the same keys and values as the full run's first five batches for the same seed."""
    rnd = random.Random(seed)
    result: dict = {"items": n, "rounds": rounds, "tree_kernels": kernels.DEFAULT.name, "cpus": os.cpu_count()}
    result["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
    items = make_items(n, rnd)
    keys = list(items)
    tree = StateTree.from_items(items)
    root_ms, root_cpu_ms = [], []
    for _ in range(rounds):
        for k, v in [(keys[rnd.randrange(n)], rnd.randbytes(VALUE_BYTES)) for _ in range(UPDATES)]:
            tree.put(k, v)
        _, wall, cpu = timed(tree.root)
        root_ms.append(wall * 1e3)
        root_cpu_ms.append(cpu * 1e3)
    result["root_after_10k_updates_ms"] = round(statistics.median(root_ms), 1)
    result["root_after_10k_updates_best_ms"] = round(min(root_ms), 1)
    result["root_after_10k_updates_cpu_ms"] = round(statistics.median(root_cpu_ms), 1)
    result["root_after_10k_updates_best_cpu_ms"] = round(min(root_cpu_ms), 1)
    result["root"] = tree.root().hex()  # the same for every build on the same seed and rounds
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result.update(issue_11(result))
    return result


def run(n: int, seed: int) -> dict:
    rnd = random.Random(seed)
    result: dict = {"items": n, "keccak_backend": KECCAK_BACKEND, "value_bytes": VALUE_BYTES, "cpus": os.cpu_count()}
    result["tree_kernels"] = kernels.DEFAULT.name  # compiled, or pure-python (DDX_PURE_PYTHON=1 / not built)
    result["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
    result["keccak_us_per_65_byte_hash"] = keccak_backends()

    items = make_items(n, rnd)
    keys = list(items)
    gc.collect()
    rss_before = rss_bytes()
    tree, wall, cpu = timed(lambda: StateTree.from_items(items))
    gc.collect()
    result["build_s"] = round(wall, 3)
    result["build_cpu_s"] = round(cpu, 3)
    result["rss_bytes_per_item"] = round((rss_bytes() - rss_before) / n, 1)
    result["bytes_per_item_with_values"] = round(deep_size(tree) / n, 1)

    # Root after 10,000 random updates (existing keys, new values): the puts record, root() re-hashes.
    put_ms, root_ms, root_cpu_ms = [], [], []
    for _ in range(5):
        updates = [(keys[rnd.randrange(n)], rnd.randbytes(VALUE_BYTES)) for _ in range(UPDATES)]

        def apply():
            for k, v in updates:
                tree.put(k, v)

        _, put_wall, _ = timed(apply)
        _, wall, cpu = timed(tree.root)
        put_ms.append(put_wall * 1e3)
        root_ms.append(wall * 1e3)
        root_cpu_ms.append(cpu * 1e3)
    result["root_after_10k_updates_ms"] = round(statistics.median(root_ms), 1)
    result["root_after_10k_updates_best_ms"] = round(min(root_ms), 1)  # least disturbed by other processes
    result["root_after_10k_updates_cpu_ms"] = round(statistics.median(root_cpu_ms), 1)
    result["root_after_10k_updates_best_cpu_ms"] = round(min(root_cpu_ms), 1)
    result["puts_10k_ms"] = round(statistics.median(put_ms), 1)

    # A mixed batch: 5,000 inserts, 5,000 deletes (structure changes: splits and collapses).
    fresh = make_items(UPDATES // 2, rnd)
    doomed = [keys.pop(rnd.randrange(len(keys))) for _ in range(UPDATES // 2)]
    for k, v in fresh.items():
        tree.put(k, v)
    for k in doomed:
        tree.delete(k)
    _, wall, _ = timed(tree.root)
    result["root_after_5k_inserts_5k_deletes_ms"] = round(wall * 1e3, 1)
    keys.extend(fresh)

    root = tree.root()
    sample = [keys[rnd.randrange(len(keys))] for _ in range(PROOFS)]
    proofs, wall, cpu = timed(lambda: [tree.prove(k) for k in sample])
    result["proof_gen_us"] = round(wall / PROOFS * 1e6, 1)
    result["proof_gen_cpu_us"] = round(cpu / PROOFS * 1e6, 1)
    result["avg_proof_siblings"] = round(sum(len(p.siblings) for p in proofs) / PROOFS, 2)
    result["max_proof_siblings"] = max(len(p.siblings) for p in proofs)
    ok, wall, _ = timed(lambda: all(verify_inclusion(root, p) for p in proofs))
    assert ok, "a generated proof failed to verify"
    result["proof_verify_us"] = round(wall / PROOFS * 1e6, 1)
    absent = [bytes([rnd.randrange(1, 14)]) + rnd.randbytes(31) for _ in range(PROOFS)]
    _, wall, _ = timed(lambda: [tree.prove_absent(k) for k in absent])
    result["non_inclusion_proof_gen_us"] = round(wall / PROOFS * 1e6, 1)

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.snap"
        def save() -> None:  # what a shell does with the snapshot bytes: write and fsync
            with open(path, "wb") as f:
                f.write(encode_snapshot(tree))
                f.flush()
                os.fsync(f.fileno())

        _, wall, _ = timed(save)
        result["snapshot_save_s"] = round(wall, 3)
        result["snapshot_bytes"] = path.stat().st_size
        restored, wall, _ = timed(lambda: decode_snapshot(path.read_bytes()))
        result["snapshot_load_s"] = round(wall, 3)
        assert restored.root() == root, "restored root differs"
    restored = tree = proofs = None  # free the 1M-item trees (rebound, not deleted: the closures above name them)
    gc.collect()

    # The commitment structure alone (keep_values=False): what bytes_per_item reports.
    hash_only = StateTree.from_items(items, keep_values=False)
    result["bytes_per_item"] = round(deep_size(hash_only) / n, 1)
    keys = list(items)
    root_ms = []
    for _ in range(3):
        for _ in range(UPDATES):
            hash_only.put(keys[rnd.randrange(n)], rnd.randbytes(VALUE_BYTES))
        _, wall, _ = timed(hash_only.root)
        root_ms.append(wall * 1e3)
    result["root_after_10k_updates_hash_only_ms"] = round(statistics.median(root_ms), 1)
    del hash_only
    gc.collect()
    result.update(engine_sized_batches(rnd))
    result.update(compiled_vs_pure(rnd))
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result["vyper_gas_by_depth"] = vyper_gas_by_depth()
    result["targets"] = TARGETS
    result["meets_targets"] = {name: result[name] <= limit for name, limit in TARGETS.items()}
    result.update(issue_11(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--rehash-only", action="store_true", help="only the root after 10,000 updates (faster)")
    parser.add_argument("--rounds", type=int, default=5, help="batches timed with --rehash-only")
    args = parser.parse_args()
    result = rehash_only(args.items, args.seed, args.rounds) if args.rehash_only else run(args.items, args.seed)
    if not args.json:
        for name, value in result.items():
            print(f"{name:40} {value}")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
