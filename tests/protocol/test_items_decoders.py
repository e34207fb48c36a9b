"""Leaf decoders beside the encoders: each is the exact inverse, and refuses anything else."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddx_offchain.protocol import items
from ddx_offchain.protocol.errors import ProtocolError

addresses = st.binary(min_size=20, max_size=20)
amounts = st.integers(0, 2**256 - 1)


@given(addresses, addresses, amounts)
def test_withdrawal_value_round_trips(trader, token, cumulative):
    value = items.withdrawal_value("0x" + trader.hex(), "0x" + token.hex(), cumulative)
    assert items.decode_withdrawal_value(value) == (trader, token, cumulative)


@given(addresses, addresses, amounts, amounts)
def test_balance_value_round_trips(trader, token, amount, deposited):
    value = items.balance_value("0x" + trader.hex(), "0x" + token.hex(), amount, deposited)
    assert items.decode_balance_value(value) == (trader, token, amount, deposited)


def test_other_bytes_are_refused():
    withdrawal = items.withdrawal_value("0x" + "11" * 20, "0x" + "22" * 20, 5)
    balance = items.balance_value("0x" + "11" * 20, "0x" + "22" * 20, 5, 6)
    with pytest.raises(ProtocolError, match="128 bytes"):
        items.decode_withdrawal_value(balance)
    with pytest.raises(ProtocolError, match="not a BALANCE"):
        items.decode_balance_value(b"\x00" * 31 + b"\x07" + balance[32:])
    with pytest.raises(ProtocolError, match="padding"):
        items.decode_withdrawal_value(withdrawal[:32] + b"\x01" + withdrawal[33:])


def test_proof_documents_are_one_form_or_the_other_never_both():
    """Security review finding 9: a document with both field sets was a valid inclusion proof to one parser (extra
    fields ignored) and an `other_value_hash` without `other_key` was silently dropped by the other."""
    from ddx_offchain.protocol.proof import InclusionProof, NonInclusionProof, ProofError
    from ddx_offchain.tree import StateTree

    tree = StateTree()
    key = items.withdrawal_key("0x" + "11" * 20, "0x" + "22" * 20)
    tree.put(key, items.withdrawal_value("0x" + "11" * 20, "0x" + "22" * 20, 5))
    tree.put(items.balance_key("0x" + "11" * 20, "0x" + "22" * 20), b"\x08" * 160)
    inclusion = tree.prove(key).to_json()
    assert InclusionProof.from_json(inclusion).key == key
    absent = tree.prove_absent(items.withdrawal_key("0x" + "33" * 20, "0x" + "22" * 20)).to_json()
    assert NonInclusionProof.from_json(absent)
    mixed = inclusion | {"other_key": "0x" + "44" * 32, "other_value_hash": "0x" + "55" * 32}
    for bad in (mixed, inclusion | {"note": "x"}, {"key": inclusion["key"], "siblings": inclusion["siblings"]}):
        with pytest.raises(ProofError, match="fields"):
            InclusionProof.from_json(bad)
    half = {"key": inclusion["key"], "siblings": [], "other_value_hash": "0x" + "55" * 32}
    with pytest.raises(ProofError, match="together"):
        NonInclusionProof.from_json(half)
    with pytest.raises(ProofError, match="fields"):
        NonInclusionProof.from_json(mixed)
