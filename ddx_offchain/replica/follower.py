"""A replica's sequencing side: it has none. It follows the request log an operator publishes (`GET /v1/requests`)
and applies each entry through the same state machine and engine every operator runs, which re-verifies every
trader signature; it never proposes, so a write to it is refused with the operators to send it to.

`ReplicaSequencer` stands where Raft stands on an operator (node/sequencer.py); `LogFollower` pulls pages from a
list of operator APIs, switching to the next one when one fails, and checks that each entry lands on the request
index the source stated (a source whose log disagrees with the replay is an alarm, not a retry).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from ..errors import DdxError
from ..node.admission import AdmissionError
from ..node.backfill import BackfillError, parse_request_log_item
from ..node.service import OperatorService

log = logging.getLogger("ddx.replica")

PAGE = 1000  # the API's most entries per page


class ReadOnlyReplica(AdmissionError):
    """A write sent to a replica: it sequences nothing. `operators` names where to send it."""

    def __init__(self, operators: list[str]) -> None:
        super().__init__(
            "read_only_replica",
            "this is a read-only replica: send requests to an operator (" + ", ".join(operators) + ")",
            operators=operators,
        )


class ReplicaSequencer:
    """The Sequencer seam (node/sequencer.py) of a replica: refuses proposals; reports how far it applied."""

    node_id = 0

    def __init__(self, follower: "LogFollower") -> None:
        self.follower = follower

    async def propose(self, data: bytes) -> int:
        raise ReadOnlyReplica(self.follower.sources)

    def is_leader(self) -> bool:
        return False

    def leader_id(self) -> int | None:
        return None

    def applied_index(self) -> int:
        return self.follower.service.machine.last_log_index

    def commit_index(self) -> int:
        return max(self.follower.source_log_index, self.applied_index())

    def status(self) -> dict:
        return {"role": "replica"}  # what it follows is the status' `replica` section (replica/node.py)


class SourceDisagrees(DdxError):
    """The source's request log does not replay as it states (wrong request index, malformed items)."""


class LogFollower:
    """Pulls the request log from `sources` (operator API URLs, in order of preference) into `service`."""

    def __init__(self, service: OperatorService, sources: list[str], *, poll_s: float = 0.2, timeout_s: float = 10.0) -> None:
        if not sources:
            raise ValueError("a replica needs at least one operator API to follow")
        self.service = service
        self.sources = [s.rstrip("/") for s in sources]
        self.current = 0  # index into sources
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.source_log_index = 0  # the newest log index a source has shown
        self.switches = 0
        self.failures = 0
        self.last_error: str | None = None
        self.alarm: str | None = None  # set when a source's log does not replay as stated: following stops

    @property
    def next_request_index(self) -> int:
        return self.service.machine.next_request_index

    def status(self) -> dict:
        return {
            "source": self.sources[self.current],
            "sources": self.sources,
            "nextRequestIndex": self.next_request_index,
            "appliedLogIndex": self.service.machine.last_log_index,
            "sourceLogIndex": self.source_log_index,
            "switches": self.switches,
            "failures": self.failures,
            "lastError": self.last_error,
            "alarm": self.alarm,
        }

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as http:
            while self.alarm is None:
                try:
                    applied = await self.poll_once(http)
                except SourceDisagrees as exc:
                    self.alarm = str(exc)
                    log.error("replica stopped following: %s", exc)
                    return
                except (aiohttp.ClientError, asyncio.TimeoutError, BackfillError, ValueError) as exc:
                    self._failed(exc)
                    await asyncio.sleep(self.poll_s)
                    continue
                if not applied:
                    await asyncio.sleep(self.poll_s)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{self.sources[self.current]}: {type(exc).__name__}: {exc}"[:300]
        if len(self.sources) > 1:
            self.current = (self.current + 1) % len(self.sources)
            self.switches += 1
            log.warning("replica source failed (%s); switching to %s", self.last_error, self.sources[self.current])

    async def poll_once(self, http: aiohttp.ClientSession) -> int:
        """Fetch and apply one page from the current source; returns how many entries it applied."""
        first = self.next_request_index
        url = f"{self.sources[self.current]}/v1/requests"
        async with http.get(url, params={"from": first, "to": first + PAGE - 1}) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=f"HTTP {resp.status}")
            entries = (await resp.json())["entries"]
        applied = 0
        for expected, item in enumerate(entries, first):
            stated = parse_request_log_item(item, expected)
            self.source_log_index = max(self.source_log_index, stated.log_index)
            if stated.log_index <= self.service.machine.last_log_index:
                raise SourceDisagrees(f"request {expected} is at log index {stated.log_index}, already applied past it")
            self.service.apply_committed(stated.log_index, stated.entry)
            if self.next_request_index != expected + 1:
                raise SourceDisagrees(
                    f"{self.sources[self.current]} states request {expected} at log index {stated.log_index}, the "
                    f"replay does not sequence it there"
                )
            applied += 1
        return applied
