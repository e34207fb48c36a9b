"""The block follower (pure): confirmation depth, reorgs by hash chaining, deposit sequence alarms, anchors."""

from __future__ import annotations

import pytest

from ddx_offchain.chain.core.blocks import BlockHeader, ChainDataError, DepositEvent
from ddx_offchain.chain.core.follower import (
    AlarmKind,
    FetchHeaders,
    FetchInbox,
    Follower,
    FollowerConfig,
    Halted,
    Idle,
)
from ddx_offchain.protocol.hashing import keccak256

TRADER = b"\x11" * 20
TOKEN = b"\x22" * 20
MAIN = b"main".ljust(32, b"\0")


class FakeChain:
    """Block hashes derived from (fork, number); `deposits[number]` lists the amounts deposited there."""

    def __init__(self) -> None:
        self.fork_at: dict[int, str] = {}  # number -> fork name from that height on
        self.length = 0
        self.deposits: dict[int, list[int]] = {}

    def fork_of(self, number: int) -> str:
        name = "main"
        for height in sorted(self.fork_at):
            if number >= height:
                name = self.fork_at[height]
        return name

    def hash(self, number: int) -> bytes:
        return keccak256(f"{self.fork_of(number)}:{number}".encode())

    def header(self, number: int) -> BlockHeader:
        parent = self.hash(number - 1) if number > 0 else b"\0" * 32
        return BlockHeader(number, self.hash(number), parent)

    def events(self, first: int, last: int, seq_from: dict[int, int]) -> list[DepositEvent]:
        out = []
        for number in range(first, last + 1):
            for i, amount in enumerate(self.deposits.get(number, [])):
                out.append(
                    DepositEvent(seq_from[number] + i, TRADER, MAIN, TOKEN, amount, number, self.hash(number), i)
                )
        return out


def drive(follower: Follower, chain: FakeChain, seqs: dict[int, int]) -> list:
    """Run the follower against the fake chain until idle; returns the handed blocks."""
    follower.observe_head(chain.length)
    handed = []
    for _ in range(500):
        action = follower.next_action()
        if isinstance(action, (Idle, Halted)):
            return handed
        if isinstance(action, FetchHeaders):
            follower.on_headers([chain.header(n) for n in range(action.first, min(action.last, chain.length) + 1)])
        elif isinstance(action, FetchInbox):
            handed += follower.on_inbox(action.first, action.last, chain.events(action.first, action.last, seqs))
    raise AssertionError("follower did not settle")


def numbered(chain: FakeChain) -> dict[int, int]:
    """seq of the first deposit of each block, counting from 1 in block order."""
    out, seq = {}, 1
    for number in sorted(chain.deposits):
        out[number] = seq
        seq += len(chain.deposits[number])
    return out


def fresh(confirmations: int = 3, anchor: int = 1000) -> Follower:
    return Follower(
        FollowerConfig(confirmations=confirmations, header_batch=4, anchor_interval=anchor),
        cursor_number=0, cursor_hash=None, next_deposit_seq=1,
    )


def test_hands_only_blocks_past_the_confirmation_depth():
    chain = FakeChain()
    chain.length = 10
    chain.deposits = {5: [100], 8: [200], 9: [300]}
    follower = fresh(confirmations=2)
    handed = drive(follower, chain, numbered(chain))
    assert [b.number for b in handed] == [5, 8]  # 9 is only 1 deep
    assert [d.seq for b in handed for d in b.deposits] == [1, 2]
    assert handed[0].hash == chain.hash(5)
    chain.length = 11
    handed = drive(follower, chain, numbered(chain))
    assert [b.number for b in handed] == [9]
    assert follower.next_deposit_seq == 4


def test_zero_confirmations_hands_the_head():
    chain = FakeChain()
    chain.length = 3
    chain.deposits = {3: [1]}
    assert [b.number for b in drive(fresh(confirmations=0), chain, numbered(chain))] == [3]


def test_reorg_within_the_depth_rewinds_and_hands_the_new_fork_only():
    chain = FakeChain()
    chain.length = 10
    chain.deposits = {9: [500]}  # on the main fork, not yet confirmed (depth 3)
    follower = fresh(confirmations=3)
    assert drive(follower, chain, numbered(chain)) == []
    assert follower.tip == 10
    # a 3-block reorg from height 8: the deposit moves to block 11 of the new fork
    chain.fork_at[8] = "b"
    chain.length = 14
    chain.deposits = {11: [700]}
    handed = drive(follower, chain, numbered(chain))
    assert [(b.number, b.hash) for b in handed] == [(11, chain.hash(11))]
    assert [d.amount for d in handed[0].deposits] == [700]
    assert follower.reorgs == 1 and follower.deepest_reorg == 3
    assert [h.hash for h in follower.chain] == [chain.hash(n) for n in range(12, 15)]


def test_a_reorg_below_a_handed_block_raises_an_alarm_and_stops():
    chain = FakeChain()
    chain.length = 10
    chain.deposits = {5: [1]}
    follower = fresh(confirmations=2)
    drive(follower, chain, numbered(chain))
    assert follower.cursor_number == 8
    chain.fork_at[7] = "deep"
    chain.length = 12
    assert drive(follower, chain, numbered(chain)) == []
    assert follower.alarm is not None and follower.alarm.kind is AlarmKind.SEQUENCED_BLOCK_REORGED
    assert isinstance(follower.next_action(), Halted)
    assert follower.status()["state"] == "halted"


def test_resume_checks_the_last_sequenced_block_is_still_canonical():
    chain = FakeChain()
    chain.length = 20
    ok = Follower(FollowerConfig(confirmations=1), cursor_number=10, cursor_hash=chain.hash(10), next_deposit_seq=1)
    ok.observe_head(20)
    assert ok.next_action() == FetchHeaders(10, 10)
    ok.on_headers([chain.header(10)])
    assert ok.alarm is None and ok.next_action() == FetchHeaders(11, 20 if 20 - 10 <= 100 else 110)
    stale = Follower(FollowerConfig(confirmations=1), cursor_number=10, cursor_hash=b"\x99" * 32, next_deposit_seq=1)
    stale.observe_head(20)
    stale.on_headers([chain.header(10)])
    assert stale.alarm.kind is AlarmKind.SEQUENCED_BLOCK_REORGED


def test_a_deposit_gap_stops_ingestion_after_the_blocks_before_it():
    chain = FakeChain()
    chain.length = 10
    chain.deposits = {3: [1], 5: [2]}
    seqs = {3: 1, 5: 3}  # seq 2 is missing: the RPC dropped a log, or the contract was not the one we think
    follower = fresh(confirmations=0)
    handed = drive(follower, chain, seqs)
    assert [b.number for b in handed] == [3]
    assert follower.alarm.kind is AlarmKind.DEPOSIT_GAP and follower.alarm.block_number == 5
    assert "expected 2" in follower.alarm.detail
    assert follower.next_deposit_seq == 2  # never skipped past the gap
    chain.length = 12
    assert drive(follower, chain, seqs) == []  # halted: nothing more is handed


def test_a_repeated_deposit_seq_is_an_alarm_too():
    chain = FakeChain()
    chain.length = 5
    chain.deposits = {2: [1], 4: [2]}
    follower = fresh(confirmations=0)
    drive(follower, chain, {2: 1, 4: 1})
    assert follower.alarm.kind is AlarmKind.DEPOSIT_REPEATED


def test_resume_starts_at_the_engines_next_seq():
    chain = FakeChain()
    chain.length = 6
    chain.deposits = {6: [9]}
    follower = Follower(FollowerConfig(confirmations=0), cursor_number=4, cursor_hash=chain.hash(4), next_deposit_seq=8)
    handed = drive(follower, chain, {6: 8})
    assert [d.seq for d in handed[0].deposits] == [8]


def test_logs_from_another_fork_are_fetched_again_not_handed():
    chain = FakeChain()
    chain.length = 6
    chain.deposits = {4: [10]}
    follower = fresh(confirmations=0)
    follower.observe_head(6)
    while not isinstance(action := follower.next_action(), FetchInbox):
        follower.on_headers([chain.header(n) for n in range(action.first, action.last + 1)])
    stale = DepositEvent(1, TRADER, MAIN, TOKEN, 10, 4, b"\x77" * 32, 0)  # logged on a fork the headers are not on
    assert follower.on_inbox(action.first, action.last, [stale]) == []
    assert follower.tip == 3  # dropped from block 4 on, to be fetched again
    handed = drive(follower, chain, numbered(chain))
    assert [b.number for b in handed] == [4]


def test_head_going_back_drops_headers_above_it():
    chain = FakeChain()
    chain.length = 10
    follower = fresh(confirmations=5)
    drive(follower, chain, {})
    assert follower.tip == 10
    follower.observe_head(7)
    assert follower.tip == 7


def test_anchor_blocks_without_deposits_every_interval():
    chain = FakeChain()
    chain.length = 25
    follower = fresh(confirmations=0, anchor=10)
    handed = []
    for length in range(1, 26):
        chain.length = length
        handed += drive(follower, chain, {})
    assert [b.number for b in handed] == [10, 20]
    assert all(b.deposits == () for b in handed)


def test_chain_block_command_carries_the_deposits_and_a_stable_id():
    chain = FakeChain()
    chain.length = 2
    chain.deposits = {2: [5, 6]}
    [block] = drive(fresh(confirmations=0), chain, numbered(chain))
    command = block.command()
    assert command.block_number == 2 and command.block_hash == chain.hash(2)
    assert [(d.seq, d.amount, d.trader, d.token, d.strategy) for d in command.deposits] == [
        (1, 5, TRADER, TOKEN, MAIN), (2, 6, TRADER, TOKEN, MAIN)
    ]
    assert command.request_id == block.request_id() and block.command() == command


def test_malformed_answers_are_typed_errors():
    follower = fresh(confirmations=0)
    follower.observe_head(3)
    with pytest.raises(ChainDataError):
        follower.on_headers([FakeChain().header(2)])  # asked for 1
    with pytest.raises(ChainDataError):
        follower.observe_head(-1)
    with pytest.raises(ChainDataError):
        BlockHeader(1, b"short", b"\0" * 32)
    with pytest.raises(ValueError):
        FollowerConfig(confirmations=-1)
