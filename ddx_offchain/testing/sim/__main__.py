"""python -m ddx_offchain.testing.sim [--stack] --seed N [--steps M] [--seeds K] [--trace] [--keep-going]: run or
replay (`--stack`: each node runs the operator's state machine and engine, exchange.py)."""

from __future__ import annotations

import argparse
import sys
import time

from ddx_offchain.testing.sim.simulator import Options, Simulation, SimulationFailure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddx_offchain.testing.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds to run")
    parser.add_argument("--steps", type=int, default=2000, help="events per run before the convergence phase")
    parser.add_argument("--nodes", type=int, default=None, help="founding voters (default: 3 or 5 by seed)")
    parser.add_argument("--trace", action="store_true", help="print the run's notable events")
    parser.add_argument("--stack", action="store_true", help="the whole stack: the operator's state machine and engine")
    parser.add_argument("--keep-going", action="store_true", help="run every seed; report all failures at the end")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    failed: list[int] = []
    for seed in range(args.seed, args.seed + args.seeds):
        sim = Simulation(seed, Options(steps=args.steps, nodes=args.nodes, trace=args.trace, stack=args.stack))
        try:
            sim.run()
        except SimulationFailure as exc:
            print(f"FAILED {exc}", file=sys.stderr, flush=True)
            if not args.keep_going:
                return 1
            failed.append(seed)
            continue
        finally:
            if args.trace and sim.trace_lines:
                print("\n".join(sim.trace_lines[-200:]))
        acked = len(sim.checker.acknowledged)
        print(f"seed {seed}: ok ({sim.steps_done} events, {acked} acknowledged proposals, "
              f"{len(sim.checker.leader_of_term)} terms with a leader)")
    print(f"{args.seeds} seed(s) in {time.perf_counter() - started:.1f}s, {len(failed)} failed {failed[:20]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
