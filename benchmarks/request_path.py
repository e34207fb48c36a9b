"""What a single request costs between the HTTP body and the Raft entry on the leader, step by step (issue 11,
"fewer copies between HTTP and Raft"), against the signature work around it — in one process, so the machine's
noise cancels in the shares.

    python benchmarks/request_path.py --json      # the last line is one JSON object

Steps, for a signed PlaceOrder as a client sends it: the body's JSON into a dict (msgspec, as the API decodes it
once at the edge); the dict into the request object with its field rules (`request_from_json`); the EIP-712 digest
and signer recovery (`verify_request`); the request into its Raft entry (`encode_entry`); the entry framed (one
`bytes.join`, as the log and the transport frame it). A follower's apply (`decode_entry` + `verify_request`) is
timed too; the leader skips it for its own proposals (node/state_machine.py `note_verified`). CPU µs per request,
the best of `--rounds` runs of `--n` requests each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec  # noqa: E402

from ddx_offchain.protocol.eip712 import Domain, DomainCache, address_of  # noqa: E402
from ddx_offchain.protocol.requests import (  # noqa: E402
    PlaceOrder,
    decode_entry,
    encode_entry,
    market_id,
    request_from_json,
    sign_request,
    strategy_id,
    verify_request,
)

KEY = b"\x11" * 32
DOMAIN = Domain.of(31337, "0x" + "5a" * 20)


def cpu_us(fn, n: int, rounds: int) -> float:
    best = None
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        per = (time.process_time() - start) / n * 1e6
        best = per if best is None else min(best, per)
    return round(best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    cache = DomainCache(DOMAIN)
    order = PlaceOrder(address_of(KEY), strategy_id("main"), market_id("ETHP"), 0, 0, 100, 1, False, 1, 1_700_000_000_000)
    body = msgspec.json.encode(sign_request(order, DOMAIN, KEY).to_json())
    doc = msgspec.json.decode(body)
    request, signature, _ = request_from_json(doc)
    signed = verify_request(request, signature, cache, agents=True)
    entry = encode_entry(signed)
    framed = len(entry).to_bytes(4, "big")
    steps = {
        "json_decode_us": cpu_us(lambda: msgspec.json.decode(body), args.n, args.rounds),
        "parse_and_field_rules_us": cpu_us(lambda: request_from_json(doc), args.n, args.rounds),
        "digest_and_recovery_us": cpu_us(lambda: verify_request(request, signature, cache, agents=True), args.n, args.rounds),
        "encode_entry_us": cpu_us(lambda: encode_entry(signed), args.n, args.rounds),
        "frame_us": cpu_us(lambda: b"".join((framed, entry)), args.n, args.rounds),
        "follower_decode_and_verify_us": cpu_us(lambda: verify_request(*decode_entry(entry), cache, agents=True),
                                                args.n, args.rounds),
    }
    byte_copies = steps["json_decode_us"] + steps["encode_entry_us"] + steps["frame_us"]
    out = {
        "body_bytes": len(body),
        "entry_bytes": len(entry),
        **steps,
        "byte_copies_us": round(byte_copies, 2),
        "copies_and_parsing_us": round(byte_copies + steps["parse_and_field_rules_us"], 2),
        "load_average_1m_start": round(load, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if not args.json:
        for key, value in out.items():
            print(f"{key:32s} {value}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
