"""One side of the compiled-vs-pure differential test (tests/engine/test_compiled_engine.py).

`step_digests` replays a command log on a fresh engine and digests, after every command, its updates, the state
root and every state item; both sides call it. Run as a script it is the other build's side: it says which engine
build it runs, then answers each line of stdin (a JSON list of hex-encoded commands, engine.encode_command) with the
JSON list of that log's per-step digests. The test starts it with DDX_PURE_PYTHON set opposite to its own process,
since the two builds cannot share one process under one module name.
"""

from __future__ import annotations

import hashlib
import json
import sys

import msgspec
from test_properties import genesis

from ddx_offchain.engine import ENGINE_BUILD, Engine, decode_command
from ddx_offchain.engine import engine as engine_module


def step_digests(log: list) -> list[list[str]]:
    """[updates digest, state root, digest of every state item] after each command of `log`."""
    engine = Engine(genesis())
    steps = []
    for command in log:
        updates = msgspec.json.encode(engine.apply(command))
        root = engine.state_root()
        items = hashlib.sha256(b"".join(k + (v or b"") for k, v in engine.all_items())).hexdigest()
        steps.append([hashlib.sha256(updates).hexdigest(), root.hex(), items])
    return steps


def main() -> None:
    print(json.dumps({"build": ENGINE_BUILD, "engine_file": engine_module.__file__}), flush=True)
    for line in sys.stdin:
        log = [decode_command(bytes.fromhex(h)) for h in json.loads(line)]
        print(json.dumps(step_digests(log)), flush=True)


if __name__ == "__main__":
    main()
