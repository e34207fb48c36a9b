"""docs/protocol.md §6.4, executable: the inbox vectors in the spec are what protocol/inbox.py computes and what the
contract's inbox module folds, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import boa

from ddx_offchain.deployment.artifacts import REPO_ROOT
from ddx_offchain.protocol import inbox as ib
from ddx_offchain.protocol import requests as pr

SPEC = Path(REPO_ROOT / "docs/protocol.md").read_text()
TRADER, TOKEN, MAIN = bytes.fromhex("11" * 20), bytes.fromhex("22" * 20), pr.strategy_id("main")


def _vectors() -> tuple[bytes, list[bytes], list[ib.InboxCursor]]:
    section = SPEC[SPEC.index("### 6.4"):SPEC.index("### 6.5")]
    leaves = [bytes.fromhex(h) for h in re.findall(r"leaf 0x([0-9a-f]{64})", section)]
    cursors = [ib.InboxCursor(int(d), int(f), bytes.fromhex(a)) for d, f, a in re.findall(r"cursor \((\d+), (\d+), 0x([0-9a-f]{64})\)", section)]
    (fields,) = re.findall(r"fields 0x([0-9a-f]+)", section)
    assert len(leaves) == len(cursors) == 3
    return bytes.fromhex(fields), leaves, cursors


def test_the_spec_vectors_are_what_the_protocol_code_computes():
    fields, leaves, cursors = _vectors()
    assert fields == pr.forced_fields(pr.WithdrawIntent(TRADER, MAIN, TOKEN, 400_000, 0, 0))[1]
    assert leaves == [
        ib.deposit_leaf(1, TRADER, MAIN, TOKEN, 1_000_000),
        ib.forced_leaf(1, TRADER, pr.WithdrawIntent.TYPE_ID, fields),
        ib.deposit_leaf(2, TRADER, MAIN, TOKEN, 5),
    ]
    cursor = ib.EMPTY_INBOX
    for leaf, expected in zip(leaves, cursors):
        cursor = cursor.after([leaf])
        assert cursor == expected


def test_the_contract_folds_the_same_hash():
    fields, _, cursors = _vectors()
    boa.interpret.set_search_paths([str(REPO_ROOT)])
    harness = boa.load(str(REPO_ROOT / "tests/harness/InboxHarness.vy"))
    trader, token = "0x" + TRADER.hex(), "0x" + TOKEN.hex()
    harness.append_deposit(trader, MAIN, token, 1_000_000)
    assert ib.InboxCursor(*harness.inbox_head()[:2], bytes(harness.inbox_head()[2])) == cursors[0]
    harness.append_forced(trader, pr.WithdrawIntent.TYPE_ID, fields)
    assert ib.InboxCursor(*harness.inbox_head()[:2], bytes(harness.inbox_head()[2])) == cursors[1]
    harness.append_deposit(trader, MAIN, token, 5)
    assert ib.InboxCursor(*harness.inbox_head()[:2], bytes(harness.inbox_head()[2])) == cursors[2]


def test_the_checkpoint_type_string_in_the_spec_is_the_signed_one():
    from ddx_offchain.protocol import operator_messages as om

    assert f"`{om.type_string('Checkpoint')}`" in SPEC
    vyper = (REPO_ROOT / "contracts/modules/checkpoints.vy").read_text()
    assert om.type_string("Checkpoint") in vyper
