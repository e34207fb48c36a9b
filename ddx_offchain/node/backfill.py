"""History backfill after a snapshot install (docs/api.md, History).

A node that caught up by snapshot (or restarted with a history file that lagged its snapshot) never applied the
entries the snapshot covers, so its request log and update history lack them. This fills the gap from another
operator's public request log (`GET /v1/requests`), trusting nothing it is sent: the whole request log, from
genesis to the snapshot, is replayed through a fresh state machine and engine, which re-verifies every trader
signature and every replay rule, and the backfill is kept only if the replay reproduces the snapshot this node
installed through Raft (next request index, engine state root, last update ordinal) and every entry's status, hash
and reason as the peer stated them. The replay also regenerates the execution updates, with their ordinals.

`replay_request_log` is pure (no I/O); `fetch_request_log` and `HistoryBackfill` are the shell around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import aiohttp

from ..errors import DdxError
from ..protocol.eip712 import Domain, from_json
from ..protocol.errors import ProtocolError
from .history import History
from .state_machine import AppliedEntry, ExchangeStateMachine, ExecutionEngine

log = logging.getLogger("ddx.backfill")

PAGE = 1000  # the request-log endpoint's page size (api/server.py MAX_RANGE)


class BackfillError(DdxError):
    """The fetched log is incomplete, malformed, or does not reproduce the installed snapshot."""


@dataclass(frozen=True, slots=True)
class SnapshotMark:
    """What this node knows of an installed snapshot, from its own (Raft-delivered) state right after restore."""

    next_request_index: int
    last_log_index: int
    state_root: bytes
    last_ordinal: int


def parse_request_log_item(item: object, expected_index: int) -> AppliedEntry:
    """One item of a peer's request log (`GET /v1/requests`, docs/api.md) as the outcome it states, or
    BackfillError. Nothing in it is trusted: the replay recomputes every field it keeps."""
    if not isinstance(item, dict):
        raise BackfillError(f"request {expected_index}: not an object")
    if item.get("requestIndex") != str(expected_index):
        raise BackfillError(f"request log not contiguous: expected {expected_index}, got {item.get('requestIndex')!r}")
    log_index, epoch = _int_field(item, "logIndex", expected_index), _int_field(item, "epoch", expected_index)
    status, reason = item.get("status"), item.get("reason")
    if not isinstance(status, str) or not (reason is None or isinstance(reason, str)):
        raise BackfillError(f"request {expected_index}: bad status or reason")
    duplicate_of = None if item.get("duplicateOf") is None else _int_field(item, "duplicateOf", expected_index)
    entry, request_hash = _hex_field(item, "entry", expected_index), None
    if item.get("requestHash") is not None:
        request_hash = _hex_field(item, "requestHash", expected_index)
    return AppliedEntry(
        expected_index, log_index, entry, status, epoch, request_hash=request_hash, reason=reason, duplicate_of=duplicate_of
    )


def _int_field(item: dict, name: str, expected_index: int) -> int:
    """An integer of the request log: a decimal string (docs/protocol.md §7.0)."""
    try:
        return from_json("uint64", name, item.get(name))
    except ProtocolError as exc:
        raise BackfillError(f"request {expected_index}: bad {name} ({exc})") from None


def _hex_field(item: dict, name: str, expected_index: int) -> bytes:
    value = item.get(name)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise BackfillError(f"request {expected_index}: bad {name}")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise BackfillError(f"request {expected_index}: {name} is not hex") from None


def _outcome(applied: AppliedEntry) -> tuple:
    """What a request-log item states about an entry's outcome (and the replay must reproduce)."""
    return applied.status, applied.request_hash, applied.reason, applied.duplicate_of


def replay_request_log(
    domain: Domain, engine: ExecutionEngine, items: Iterable[AppliedEntry], mark: SnapshotMark, keep_from: int
) -> Iterator[AppliedEntry]:
    """Replay request-log items 1 .. mark.next_request_index - 1 (as stated: this node's history rows, or a
    peer's parsed by `parse_request_log_item`) through a fresh state machine over `engine` (at genesis); yield the
    applied entries from request `keep_from` on. Raises BackfillError (after the last yield at
    the latest, so a caller must consume everything before trusting anything) unless the replay reproduces `mark`.
    """
    machine = ExchangeStateMachine(domain, engine)
    expected = 1
    kept: list[AppliedEntry] = []
    for stated in items:
        if expected >= mark.next_request_index:
            break
        if stated.request_index != expected:
            raise BackfillError(f"request log not contiguous: expected {expected}, got {stated.request_index}")
        log_index = stated.log_index
        if log_index <= machine.last_log_index or log_index > mark.last_log_index:
            raise BackfillError(f"request {expected}: log index {log_index} out of order or past the snapshot")
        applied = machine.apply(log_index, stated.entry)
        if applied is None or applied.request_index != expected:
            raise BackfillError(f"request {expected}: entry is not a request")
        if _outcome(applied) != _outcome(stated):
            raise BackfillError(f"request {expected}: replay gives {_outcome(applied)}, the log states {_outcome(stated)}")
        if expected >= keep_from:
            kept.append(applied)
        expected += 1
    if machine.next_request_index != mark.next_request_index:
        raise BackfillError(f"log ends at request {machine.next_request_index - 1}, the snapshot at {mark.next_request_index - 1}")
    if engine.state_root() != mark.state_root or engine.last_ordinal() != mark.last_ordinal:
        raise BackfillError("the replayed log does not reproduce the installed snapshot's state")
    yield from kept


async def fetch_request_log(session: aiohttp.ClientSession, url: str, first: int, last: int) -> list[AppliedEntry]:
    """Items first..last of a peer's request log, paged and parsed; BackfillError if the peer cannot give all."""
    out: list[AppliedEntry] = []
    at = first
    while at <= last:
        upto = min(last, at + PAGE - 1)
        try:
            async with session.get(f"{url}/v1/requests", params={"from": str(at), "to": str(upto)}) as resp:
                if resp.status != 200:
                    raise BackfillError(f"{url}: request log answered {resp.status}")
                page = await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise BackfillError(f"{url}: {exc!r}") from None
        entries = page.get("entries") if isinstance(page, dict) else None
        if not isinstance(entries, list) or not entries:
            raise BackfillError(f"{url}: no entries from {at} (it lacks them too)")
        for item in entries[: upto - at + 1]:
            out.append(parse_request_log_item(item, at))
            at += 1
    return out


class HistoryBackfill:
    """Runs one backfill per installed snapshot whose range history lacks; reports progress for /v1/status."""

    def __init__(
        self,
        *,
        domain: Domain,
        history: History,
        make_engine: Callable[[], ExecutionEngine],
        peer_urls: list[str],
        timeout_s: float = 30.0,
    ) -> None:
        self.domain = domain
        self.history = history
        self.make_engine = make_engine
        self.peer_urls = peer_urls
        self.timeout_s = timeout_s
        self.state: dict = {"state": "idle"}

    async def run(self, mark: SnapshotMark) -> bool:
        """Fill every request history lacks up to the snapshot (and their updates). True when history is whole.

        The replay starts at genesis: from this node's own rows while they are contiguous, then the peer's."""
        own = await asyncio.to_thread(self.history.contiguous_requests)
        first, last = own + 1, mark.next_request_index - 1
        if first > last:
            return True
        self.state = {"state": "running", "from": first, "to": last}
        errors = []
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url in self.peer_urls:
                try:
                    fetched = await fetch_request_log(session, url, first, last)
                    written = await asyncio.to_thread(self._replay_and_record, mark, own, fetched)
                except BackfillError as exc:
                    errors.append(str(exc))
                    log.warning("history backfill from %s refused: %s", url, exc)
                    continue
                self.state = {"state": "done", "from": first, "to": last, "source": url}
                log.info("history backfilled: requests %d..%d (%d entries) from %s", first, last, written, url)
                return True
        self.state = {"state": "failed", "from": first, "to": last, "errors": errors[-3:]}
        return False

    def _replay_and_record(self, mark: SnapshotMark, own: int, fetched: list[AppliedEntry]) -> int:
        """Worker thread: replay (own rows 1..own, the peer's after); record the peer's part, and only once the
        whole replay is verified (rows are rewritten idempotently if the live writer got some meanwhile)."""
        def items() -> Iterator[AppliedEntry]:
            for start in range(1, own + 1, PAGE):
                yield from self.history.requests(start, min(own, start + PAGE - 1))
            yield from fetched

        applied = list(replay_request_log(self.domain, self.make_engine(), items(), mark, own + 1))
        for entry in applied:
            self.history.record(entry)
        self.history.flush()
        return len(applied)
