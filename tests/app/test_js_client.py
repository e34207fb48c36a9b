"""The JS client (clients/js/): its request types are the Python ones, and its node test suite (`node --test`) passes
against Python-made vectors and a running devnet — so `make test` stays the one command."""

from __future__ import annotations

import json
from pathlib import Path

from apphelpers import REPO, run_node_tests
from eth_account import Account

from ddx_offchain.chain.inbox_report import freeze_due
from ddx_offchain.cli.request_schema import parse, render, render_declarations
from ddx_offchain.client.claims import escape_balance_owed
from ddx_offchain.protocol import items
from ddx_offchain.protocol.eip712 import Domain
from ddx_offchain.protocol.errors import ProtocolError
from ddx_offchain.protocol.requests import REQUEST_TYPES, Action, Receipt, forced_fields, request_schema, sign_request
from ddx_offchain.tree.state_tree import StateTree

CLIENT = REPO / "clients" / "js"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def test_the_js_request_types_are_the_python_ones():
    committed = (CLIENT / "src" / "request_types.mjs").read_text()
    assert parse(committed) == request_schema(), (
        "clients/js/src/request_types.mjs is stale: .venv/bin/python -m ddx_offchain.cli.request_schema "
        "> clients/js/src/request_types.mjs")
    assert committed == render()
    assert set(request_schema()["requests"]) == set(REQUEST_TYPES)
    declarations = (CLIENT / "src" / "request_types.d.mts").read_text()
    assert declarations == render_declarations(), (
        "clients/js/src/request_types.d.mts is stale: .venv/bin/python -m ddx_offchain.cli.request_schema "
        "--declarations > clients/js/src/request_types.d.mts")
    for name, spec in request_schema()["requests"].items():  # each message declares its fields, in order
        body = declarations.split(f"export interface {name}Message {{\n", 1)[1].split("}\n", 1)[0]
        assert [line.split(":")[0].strip() for line in body.splitlines()] == [f["name"] for f in spec["fields"]], name


def _sample(attr: str, abi: str, i: int):
    """A value of each field type that differs per field, so a swapped field changes the hash."""
    if abi == "address":
        return bytes([0x10 + i]) * 20
    if abi == "bytes32":
        return bytes([0x40 + i]) * 32
    if abi == "bool":
        return i % 2 == 1
    if abi == "Action[]":
        return (Action(0, b"ETHP".ljust(32, b"\0"), 1, 2, 2_001_000_000, 5_000, True, b"\0" * 32, b"c1".ljust(32, b"\0"), 7),
                Action(1, b"ETHP".ljust(32, b"\0"), 0, 0, 0, 0, False, b"\x22" * 32, b"\0" * 32, 0))
    bits = int(abi[4:])
    return (1 << (min(bits, 128) - 1)) + 1000 * i + 3 if bits > 8 else i + 1  # > 2^53, within the 2^128 bound


def proof_vectors() -> dict:
    """API-form proof documents (docs/protocol.md §4) from a real state tree: BALANCE and WITHDRAWAL leaves present,
    BALANCE leaves absent with the path ending in an empty subtree and in another item's leaf."""
    token = "0x" + "ab" * 20
    traders = [Account.from_key(bytes([i + 1]) * 32).address for i in range(40)]
    tree = StateTree()
    for i, trader in enumerate(traders[:6]):
        tree.put(items.balance_key(trader, token), items.balance_value(trader, token, 900 + i, 1000 + 2**130 * i))
        tree.put(items.withdrawal_key(trader, token), items.withdrawal_value(trader, token, 100 + i))
    root = "0x" + tree.root().hex()

    def doc(trader, extra, proof):
        return {"epoch": "7", "root": root, "trader": trader, "token": token, **extra, "proof": proof.to_json()}

    present = []
    for i, trader in enumerate(traders[:6]):
        present.append(("balance", doc(trader, {"included": True, "amount": str(900 + i), "deposited": str(1000 + 2**130 * i)},
                                       tree.prove(items.balance_key(trader, token)))))
        present.append(("withdrawal", doc(trader, {"included": True, "cumulative": str(100 + i)},
                                          tree.prove(items.withdrawal_key(trader, token)))))
    absent = [("balance", doc(trader, {"included": False}, tree.prove_absent(items.balance_key(trader, token))))
              for trader in traders[6:]]
    assert any("other_key" in d["proof"] for _, d in absent) and any("other_key" not in d["proof"] for _, d in absent)
    return {"valid": [{"kind": k, "doc": d} for k, d in present + absent]}


def write_vectors(path: Path) -> None:
    domain = Domain.of(31337, "0x" + "5a" * 20)
    requests = {}
    for name, cls in REQUEST_TYPES.items():
        values = {attr: _sample(attr, abi, i) for i, (attr, _, abi) in enumerate(cls.FIELDS)}
        values["trader"] = Account.from_key(KEY).address
        values["trader"] = bytes.fromhex(values["trader"][2:])
        request = cls(**values)
        signed = sign_request(request, domain, KEY)
        requests[name] = {"typedData": request.typed_data(domain), "requestHash": "0x" + signed.request_hash.hex(),
                          "signature": "0x" + signed.signature.hex()}
        try:
            type_id, fields = forced_fields(request)
            requests[name]["forced"] = {"typeId": type_id, "fields": "0x" + fields.hex()}
        except ProtocolError:  # not forceable, or the sample breaks a field rule the contract path checks
            pass
    operator = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    receipt = Receipt(b"\x77" * 32, 42, 3, b"\x12" * 20, 9).sign(domain, operator)
    # the escape hatch's arithmetic (claims.py escape_balance_owed, inbox_report.py freeze_due), edge cases included:
    # phantom credited deposits, partial earlier escapes, nothing owed, amounts beyond 2^53 and 2^128
    owed_cases = [(0, 0, 0, 0), (500, 500, 500, 0), (500, 200, 700, 0), (500, 200, 700, 300), (500, 900, 700, 0),
                  (100, 1000, 0, 0), (10, 0, 0, 50), (2**127 + 5, 2**100, 2**101, 7), (2**200, 1, 2**60, 2**199)]
    due_cases = [(1_000, 3_600, 0, 0, 0, 600), (1_000, 3_600, 2, 3, 1_500, 600), (1_000, 3_600, 3, 3, 1_500, 600),
                 (1_000, 60, 0, 1, 1_500, 600), (2**40, 2**31, 5, 9, 2**40 + 10, 86_400)]
    path.write_text(json.dumps({
        "proofs": proof_vectors(),
        "escape": {
            "balanceOwed": [{"args": [str(a) for a in case], "owed": str(escape_balance_owed(*case))} for case in owed_cases],
            "freezeDue": [{"args": [str(a) for a in case], "at": str(freeze_due(*case))} for case in due_cases],
        },
        "domain": {"chainId": 31337, "verifyingContract": "0x" + "5a" * 20},
        "privateKey": "0x" + KEY.hex(),
        "requests": requests,
        "receipt": {"json": receipt.to_json(domain), "operator": Account.from_key(operator).address},
    }))


def test_the_js_client_suite_against_python_vectors_and_a_devnet(devnet, tmp_path):
    vectors = tmp_path / "vectors.json"
    write_vectors(vectors)
    tests = sorted(str(p) for p in (CLIENT / "test").glob("*.test.mjs"))
    assert len(tests) >= 5
    run_node_tests(tests, 600, DDX_REQUEST_VECTORS=str(vectors), DDX_DEVNET_INFO=devnet["infoPath"])


def test_the_devnet_prints_the_app_first_and_every_node_serves_it(devnet):
    import re
    import urllib.request

    out = Path(devnet["outPath"]).read_text()
    first_url = re.search(r"https?://\S+", out).group(0)
    assert first_url == devnet["app"] == devnet["apis"][0] + "/app/"
    assert out.index("web app: ") < out.index("operator 1: API")
    for api in devnet["apis"]:
        with urllib.request.urlopen(api + "/app/") as resp:
            page = resp.read().decode()
        assert resp.headers["Content-Type"].startswith("text/html") and '<script type="importmap">' in page
        with urllib.request.urlopen(api + "/app/vendor/ddx-client/requests.mjs") as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript")
            assert resp.read() == (CLIENT / "src" / "requests.mjs").read_bytes()
