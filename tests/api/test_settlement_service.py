"""The SDK's settlement service verifies each proof once: where the document becomes a LeafProof."""

from __future__ import annotations

import pytest

from ddx_offchain.client import claims
from ddx_offchain.protocol import items
from ddx_offchain.tree import StateTree

TRADER, TOKEN = "0x" + "11" * 20, "0x" + "22" * 20


def proof_document(cumulative: int) -> dict:
    tree = StateTree()
    tree.put(items.withdrawal_key(TRADER, TOKEN), items.withdrawal_value(TRADER, TOKEN, cumulative))
    tree.put(items.balance_key(TRADER, TOKEN), items.balance_value(TRADER, TOKEN, 5, 9))
    proof = tree.prove(items.withdrawal_key(TRADER, TOKEN))
    return {"epoch": "3", "root": "0x" + tree.root().hex(), "included": True, "cumulative": str(cumulative),
            "proof": proof.to_json()}


def test_a_proof_made_from_a_document_is_verified_once(monkeypatch):
    calls = []
    real = claims.verify_inclusion
    monkeypatch.setattr(claims, "verify_inclusion", lambda root, proof: calls.append(root) or real(root, proof))
    leaf = claims.LeafProof.from_api(proof_document(40), TRADER, TOKEN)
    leaf.check()  # what claim() asks before sending
    leaf.check()
    assert len(calls) == 1 and leaf.amount == 40


def test_a_forged_proof_is_still_refused_when_made_by_hand():
    good = claims.LeafProof.from_api(proof_document(40), TRADER, TOKEN)
    forged = claims.LeafProof(good.kind, good.trader, good.token, 41, good.epoch, good.root, good.siblings)
    with pytest.raises(claims.ClaimError, match="does not lead"):
        forged.check()
