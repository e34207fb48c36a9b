"""The block follower: which L1 blocks are confirmed, with which inbox entries (deposits and forced requests), and
when the chain reorganised.

Pure (sans-IO, like the Raft core): it never calls an RPC. The shell (watcher.py) asks `next_action()`, performs
it (fetch the head, a run of headers, the inbox logs of a confirmed range), feeds the answer back, and hands the
`ConfirmedBlock`s returned by `on_inbox` to the leader, in order.

Rules (docs/checkpoints.md, "Watching the chain"):
- Headers are chained by parent hash from the last block handed over (the cursor). A header whose parent is not
  the previous header's hash means the chain reorganised: the follower drops the stale header and fetches that
  height again, walking back until the chains meet. Dropping is always safe: a dropped header is fetched again.
- A block is confirmed once `confirmations` tracked headers chain on top of it (and the head agrees). Only
  confirmed blocks are handed over, so a reorg shallower than the confirmation depth never touches what was
  sequenced.
- A reorg that replaces the cursor itself (a block already handed over) is deeper than the depth: the follower
  raises an alarm and stops, since a sequenced block cannot be taken back.
- Inbox logs must come from the tracked headers (same block hash); logs from another fork mean a reorg raced the
  query, and the range is fetched again.
- Deposit and forced-request sequence numbers must each continue exactly from the last one sequenced. A gap or a
  repeat stops ingestion with an alarm; it never skips. Blocks before the offending one are still handed over.
- Blocks with inbox entries are handed over; a block without deposits is handed over as an anchor when
  `anchor_interval` blocks have passed since the last one handed over, so checkpoints anchor a recent block.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .blocks import BlockHeader, ChainDataError, ConfirmedBlock, DepositEvent, ForcedEvent, InboxEvent, inbox_order


class AlarmKind(str, Enum):
    DEPOSIT_GAP = "deposit_gap"
    DEPOSIT_REPEATED = "deposit_repeated"
    FORCED_GAP = "forced_gap"
    FORCED_REPEATED = "forced_repeated"
    INBOX_MISMATCH = "inbox_mismatch"  # the logs do not add up to the contract's own inbox head (a dropped log)
    SEQUENCED_BLOCK_REORGED = "sequenced_block_reorged"


@dataclass(frozen=True, slots=True)
class Alarm:
    kind: AlarmKind
    block_number: int
    detail: str


@dataclass(frozen=True, slots=True)
class FollowerConfig:
    confirmations: int = 6
    header_batch: int = 100  # headers per fetch
    anchor_interval: int = 32  # hand over an empty block when this many blocks passed since the last one

    def __post_init__(self) -> None:
        if not isinstance(self.confirmations, int) or not 0 <= self.confirmations <= 10_000:
            raise ValueError("confirmations must be in 0..10000")
        if not isinstance(self.header_batch, int) or not 1 <= self.header_batch <= 10_000:
            raise ValueError("header_batch must be in 1..10000")
        if not isinstance(self.anchor_interval, int) or not 1 <= self.anchor_interval <= 1_000_000:
            raise ValueError("anchor_interval must be in 1..1000000")


# ---- actions the shell performs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchHeaders:
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class FetchInbox:
    """Fetch the Deposit and ForcedRequest logs of blocks first..last."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to do until the head moves."""


@dataclass(frozen=True, slots=True)
class Halted:
    alarm: Alarm


Action = FetchHeaders | FetchInbox | Idle | Halted


class Follower:
    """Tracks the chain above the last handed-over block (`cursor`).

    `cursor_number`/`cursor_hash` is where sequencing stands: the engine's last sequenced block (its hash is
    checked against the chain before anything else happens), or `deployment_block - 1` with no hash at genesis.
    `next_deposit_seq` and `next_forced_seq` are the engine's last seqs + 1.
    """

    def __init__(
        self,
        config: FollowerConfig,
        *,
        cursor_number: int,
        cursor_hash: bytes | None,
        next_deposit_seq: int,
        next_forced_seq: int = 1,
    ) -> None:
        if cursor_number < 0 or next_deposit_seq < 1 or next_forced_seq < 1:
            raise ValueError("cursor_number >= 0, next_deposit_seq >= 1 and next_forced_seq >= 1")
        self.config = config
        self.cursor_number = cursor_number
        self.cursor_hash = cursor_hash
        self._cursor_checked = cursor_hash is None
        self.last_handed = cursor_number
        self.next_deposit_seq = next_deposit_seq
        self.next_forced_seq = next_forced_seq
        self.chain: list[BlockHeader] = []  # contiguous headers cursor+1, cursor+2, ..., each chained to the previous
        self.head: int | None = None
        self.alarm: Alarm | None = None
        self.reorgs = 0  # reorganisations seen (each walk-back counts once)
        self.deepest_reorg = 0  # headers dropped by the deepest one
        self._walking_back = 0

    # ---- queries ------------------------------------------------------------------------------------------

    @property
    def tip(self) -> int:
        return self.chain[-1].number if self.chain else self.cursor_number

    def confirmed_height(self) -> int | None:
        """The highest block with `confirmations` tracked, hash-chained blocks above it (counting on the head
        alone would confirm a block whose successors were never checked to build on it)."""
        if self.head is None:
            return None
        top = min(self.head, self.tip)
        if top < self.config.confirmations:
            return None
        return top - self.config.confirmations

    def status(self) -> dict:
        return {
            "state": "halted" if self.alarm else "following",
            "head": self.head,
            "confirmedHeight": self.confirmed_height(),
            "lastHanded": self.last_handed,
            "cursor": self.cursor_number,
            "trackedHeaders": len(self.chain),
            "nextDepositSeq": self.next_deposit_seq,
            "nextForcedSeq": self.next_forced_seq,
            "reorgs": self.reorgs,
            "deepestReorg": self.deepest_reorg,
            "alarm": None
            if self.alarm is None
            else {"kind": self.alarm.kind.value, "block": self.alarm.block_number, "detail": self.alarm.detail},
        }

    # ---- the loop -----------------------------------------------------------------------------------------

    def next_action(self) -> Action:
        if self.alarm is not None:
            return Halted(self.alarm)
        if self.head is None:
            return Idle()
        if not self._cursor_checked:
            return FetchHeaders(self.cursor_number, self.cursor_number)
        confirmed = self.confirmed_height()
        if self.chain and confirmed is not None and self.chain[0].number <= confirmed:
            last = min(confirmed, self.chain[-1].number)
            return FetchInbox(self.chain[0].number, last)
        if self.tip < self.head:
            first = self.tip + 1
            return FetchHeaders(first, min(self.head, first + self.config.header_batch - 1))
        return Idle()

    def observe_head(self, number: int) -> None:
        """The RPC's latest block number. A head below what is tracked drops the headers above it, so they are
        fetched again and re-chained (a reorg to a shorter chain, or a lagging RPC: both are safe this way)."""
        if not isinstance(number, int) or number < 0:
            raise ChainDataError(f"head must be a block number, got {number!r:.40}")
        self.head = number
        if self.chain and number < self.chain[-1].number:
            self.chain = [h for h in self.chain if h.number <= number]

    def on_headers(self, headers: list[BlockHeader]) -> None:
        """Headers answering the last FetchHeaders, ascending. Stops at the first one that does not chain."""
        if not self._cursor_checked:
            self._check_cursor(headers)
            return
        for header in headers:
            if header.number != self.tip + 1:
                raise ChainDataError(f"header {header.number} answered a request for {self.tip + 1}")
            previous_hash = self.chain[-1].hash if self.chain else self.cursor_hash
            if previous_hash is not None and header.parent_hash != previous_hash:
                self._walk_back(header)
                return
            if self._walking_back:
                self._finish_reorg()
            self.chain.append(header)

    def on_inbox(self, first: int, last: int, events: list[InboxEvent]) -> list[ConfirmedBlock]:
        """The Deposit and ForcedRequest logs of blocks first..last (a FetchInbox answer): returns the blocks to
        hand over, in order, and moves the cursor past them."""
        by_number = {h.number: h for h in self.chain if first <= h.number <= last}
        if len(by_number) != last - first + 1:
            raise ChainDataError(f"inbox logs for {first}..{last} answered, but those headers are not all tracked")
        ordered = inbox_order(events)
        for event in ordered:
            header = by_number.get(event.block_number)
            if header is None:
                raise ChainDataError(f"{_name(event)} {event.seq} logged at block {event.block_number}, outside {first}..{last}")
            if event.block_hash != header.hash:
                # The logs come from another fork than the headers: a reorg raced the query. Re-fetch from there.
                self._drop_from(event.block_number)
                self.reorgs += 1
                return []
        by_block: dict[int, list[InboxEvent]] = {}
        for event in ordered:
            by_block.setdefault(event.block_number, []).append(event)
        handed: list[ConfirmedBlock] = []
        expected = {DepositEvent: self.next_deposit_seq, ForcedEvent: self.next_forced_seq}
        for number in range(first, last + 1):
            header = by_number[number]
            entries = by_block.get(number, [])
            for event in entries:
                kind = type(event)
                if event.seq != expected[kind]:
                    gap = event.seq > expected[kind]
                    alarm = {
                        (DepositEvent, True): AlarmKind.DEPOSIT_GAP, (DepositEvent, False): AlarmKind.DEPOSIT_REPEATED,
                        (ForcedEvent, True): AlarmKind.FORCED_GAP, (ForcedEvent, False): AlarmKind.FORCED_REPEATED,
                    }[kind, gap]
                    self.alarm = Alarm(
                        alarm, number, f"{_name(event)} seq {event.seq} at block {number}, expected {expected[kind]}"
                    )
                    return handed
                expected[kind] += 1
            due = number == last and number - self.last_handed >= self.config.anchor_interval
            if entries or due:
                handed.append(
                    ConfirmedBlock(
                        number,
                        header.hash,
                        tuple(e for e in entries if type(e) is DepositEvent),
                        tuple(e for e in entries if type(e) is ForcedEvent),
                    )
                )
                self.last_handed = number
            self.next_deposit_seq = expected[DepositEvent]
            self.next_forced_seq = expected[ForcedEvent]
            self._advance_cursor(header)
        return handed

    def inbox_mismatch(self, block_number: int, detail: str) -> None:
        """The shell found the inbox logs up to `block_number` disagree with the contract's own inbox head there:
        stop, as for a gap (a log the RPC dropped would otherwise be skipped for good)."""
        self.alarm = Alarm(AlarmKind.INBOX_MISMATCH, block_number, detail)

    # ---- internals ----------------------------------------------------------------------------------------

    def _check_cursor(self, headers: list[BlockHeader]) -> None:
        if len(headers) != 1 or headers[0].number != self.cursor_number:
            raise ChainDataError(f"expected the header of block {self.cursor_number}")
        if headers[0].hash != self.cursor_hash:
            self.alarm = Alarm(
                AlarmKind.SEQUENCED_BLOCK_REORGED,
                self.cursor_number,
                f"sequenced block {self.cursor_number} 0x{self.cursor_hash.hex()} is no longer canonical "
                f"(now 0x{headers[0].hash.hex()}): a reorg deeper than the confirmation depth",
            )
            return
        self._cursor_checked = True

    def _walk_back(self, header: BlockHeader) -> None:
        if not self.chain:
            self.alarm = Alarm(
                AlarmKind.SEQUENCED_BLOCK_REORGED,
                self.cursor_number,
                f"block {header.number} does not build on sequenced block {self.cursor_number} "
                f"0x{self.cursor_hash.hex()}: a reorg deeper than the confirmation depth",
            )
            return
        self.chain.pop()
        self._walking_back += 1

    def _finish_reorg(self) -> None:
        self.reorgs += 1
        self.deepest_reorg = max(self.deepest_reorg, self._walking_back)
        self._walking_back = 0

    def _drop_from(self, number: int) -> None:
        self.chain = [h for h in self.chain if h.number < number]

    def _advance_cursor(self, header: BlockHeader) -> None:
        if not self.chain or self.chain[0] is not header:
            raise ChainDataError(f"block {header.number} is not the next tracked header")
        self.chain.pop(0)
        self.cursor_number = header.number
        self.cursor_hash = header.hash


def _name(event) -> str:
    return "deposit" if type(event) is DepositEvent else "forced request"
