"""docs/protocol.md §7.0 (one JSON form per type) and §4.2 (the API's proof documents), checked against the code.

The two proof documents are parsed out of the spec itself: the renderer must produce them byte for byte (as JSON
values) from the §4.1 tree, and the verifiers must accept them."""

import json
import re
from pathlib import Path

import pytest

from ddx_offchain.api import render
from ddx_offchain.engine.updates import DepositCredited, Fill
from ddx_offchain.node.state_machine import AppliedEntry, ExecutionUpdate
from ddx_offchain.node.views import BalanceProof, WithdrawalProof
from ddx_offchain.protocol import items
from ddx_offchain.protocol.eip712 import checksum_address
from ddx_offchain.protocol.proof import InclusionProof, NonInclusionProof, verify_inclusion, verify_non_inclusion
from ddx_offchain.tree import StateTree

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
T, A, B = b"\x11" * 20, b"\x22" * 20, b"\x33" * 20
INTEGER = re.compile(r"^(0|-?[1-9][0-9]*)$")


def spec_vector(name: str) -> dict:
    match = re.search(rf"<!-- vector: {name} -->\n```json\n(.*?)```", SPEC, re.S)
    assert match, f"docs/protocol.md has no vector {name}"
    return json.loads(match.group(1))


def section_41_tree() -> StateTree:
    return StateTree.from_items({
        items.withdrawal_key(T, A): items.withdrawal_value(T, A, 1000),
        items.withdrawal_key(T, B): items.withdrawal_value(T, B, 7),
        items.balance_key(T, A): items.balance_value(T, A, 500, 1500),
    })


def test_the_withdrawal_proof_document_of_the_spec_is_what_the_api_renders_and_it_verifies():
    tree = section_41_tree()
    doc = spec_vector("proof-document-withdrawal")
    rendered = render.proof_doc(WithdrawalProof(1, tree.root(), T, A, True, tree.prove(items.withdrawal_key(T, A)), 1000))
    assert rendered == doc
    proof = InclusionProof.from_json(doc["proof"])
    assert proof.key == items.withdrawal_key(doc["trader"], doc["token"])
    assert proof.value_hash == items.value_hash(items.withdrawal_value(doc["trader"], doc["token"], int(doc["cumulative"])))
    assert verify_inclusion(bytes.fromhex(doc["root"][2:]), proof)


def test_the_non_inclusion_proof_document_of_the_spec_is_what_the_api_renders_and_it_verifies():
    tree = section_41_tree()
    doc = spec_vector("proof-document-balance-absent")
    absence = tree.prove_absent(items.balance_key(T, B))
    assert render.proof_doc(BalanceProof(1, tree.root(), T, B, False, absence, 0, 0)) == doc
    assert set(doc) == {"epoch", "root", "trader", "token", "included", "amount", "deposited", "proof"}
    proof = NonInclusionProof.from_json(doc["proof"])
    assert proof.key == items.balance_key(doc["trader"], doc["token"]) and proof.other_key is not None
    assert verify_non_inclusion(bytes.fromhex(doc["root"][2:]), proof)
    with pytest.raises(Exception):  # the form is fixed by its fields: not an inclusion proof
        InclusionProof.from_json(doc["proof"])


def _leaves(value, path=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _leaves(inner, f"{path}[{i}]")
    else:
        yield path, value


def _assert_conventions(doc: dict, addresses: set[str]) -> None:
    """No JSON number anywhere; every address-valued member EIP-55; every other hex string lower-case."""
    for path, value in _leaves(doc):
        assert not (isinstance(value, (int, float)) and not isinstance(value, bool)), f"{path} is a JSON number"
        if isinstance(value, str) and value.startswith("0x"):
            if len(value) == 42:
                assert value == checksum_address(bytes.fromhex(value[2:])) and value in addresses, path
            else:
                assert value == value.lower(), path


def test_updates_and_the_request_log_write_every_integer_as_a_string_and_addresses_checksummed():
    """Second review, finding 9: receipts gave integers as strings but execution updates (ordinal, request index)
    as JSON numbers, and addresses were checksummed in views but lower-case in updates."""
    market = b"ETHP".ljust(32, b"\0")
    fill = Fill(
        ordinal=7, market=market, maker_order=b"\x01" * 32, taker_order=b"\x02" * 32, maker_trader=T,
        maker_strategy=b"m".ljust(32, b"\0"), taker_trader=A, taker_strategy=b"t".ljust(32, b"\0"), taker_side=1,
        price=2_000 * 10**6, size=10, maker_fee=-3, taker_fee=5, liquidation=False,
    )
    deposit = DepositCredited(ordinal=8, seq=3, trader=T, strategy=b"main".ljust(32, b"\0"), token=A, amount=10**30)
    docs = [render.update_doc(ExecutionUpdate(5, update, (T, A), market)) for update in (fill, deposit)]
    addresses = {checksum_address(T), checksum_address(A)}
    for doc in docs:
        _assert_conventions(doc, addresses)
    assert docs[0]["ordinal"] == "7" and docs[0]["requestIndex"] == "5"
    assert docs[0]["traders"] == [checksum_address(T), checksum_address(A)] == [docs[0]["data"]["maker_trader"], docs[0]["data"]["taker_trader"]]
    assert docs[0]["data"]["maker_fee"] == "-3" and docs[1]["data"]["amount"] == str(10**30)
    entry = render.request_doc(AppliedEntry(5, 9, b"\x01\x02", "duplicate", 2, request_hash=b"\x03" * 32, duplicate_of=4))
    _assert_conventions(entry, set())
    assert (entry["requestIndex"], entry["logIndex"], entry["epoch"], entry["duplicateOf"]) == ("5", "9", "2", "4")


def test_every_integer_in_the_spec_vectors_is_a_string():
    for name in ("proof-document-withdrawal", "proof-document-balance-absent"):
        for path, value in _leaves(spec_vector(name)):
            assert not isinstance(value, int) or isinstance(value, bool), path
            if path in (".epoch", ".cumulative", ".amount", ".deposited"):
                assert INTEGER.match(value), path
