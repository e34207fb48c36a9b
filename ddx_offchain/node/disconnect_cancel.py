"""Cancel-on-disconnect (docs/api.md, "Cancel on disconnect"): a request-channel connection hands this operator a
ScheduleCancel its trader (or an approved agent) signed, and the operator holds it, unsequenced, until the
connection ends; then it submits it like any request, so the engine cancels the trader's orders at its `time`.

The operator never signs anything for the trader: it can only sequence the exact bytes the client gave it, once
(the nonce), and only the client chose the cancel's scope and time. A client that stays connected keeps moving the
time forward with fresh requests (a heartbeat), so the held request is never sequenced while the client is alive.

Rules (one held request per connection, so memory is bounded by the connections):

- **arm / refresh**: the request must be a ScheduleCancel that passes admission (schema, rate limits charged as
  for any request, domain, timestamp window, signature of the trader or an approved agent), whose nonce is not
  already sequenced, and whose *deadline* `min(time, timestamp + max_age_ms) - margin_ms` is after now (this
  node's clock). A refresh must name the same (trader, strategy, market) as the held one and a later `time`.
  A refusal is an AdmissionError with its reason and leaves the held request as it was.
- **fire**: when the connection ends (closed, lost, heartbeat timeout), or when the deadline passes while the
  connection is still open but no refresh came (it *lapsed*: past it, the request would be too old for admission
  or too close to its time to be sequenced before it), the held request is submitted: timestamp window checked
  again, nonce rules, proposal, apply, receipt (`OperatorService.submit_admitted`). `no_leader`,
  `not_sequenced`, `outcome_unknown` and `overloaded` are retried (same bytes, at most once executed).
- **outcomes**: `fired` (sequenced; the engine set the schedule) or `failed` (refused at submit: timestamp out of
  the window, nonce used meanwhile, agent revoked, no leader after the retries; or rejected by the engine: its
  `time` already passed, too many schedules). A failure is logged and counted; nothing else happens. The
  guarantee is the sequenced ScheduleCancel; holding one is best effort per operator connection.
- **stopping**: when the server stops, held requests are dropped, not sequenced (counted `dropped`): a stopping
  operator is, for its clients, a crashing one. Submissions already under way get SHUTDOWN_WAIT_S, then are
  cancelled (their outcome is then unknown: a retry of the same bytes would execute at most once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..engine.reasons import Reject
from ..engine.updates import Rejected
from ..errors import DdxError
from ..protocol.requests import ScheduleCancel, SignedRequest
from .admission import AdmissionError
from .node_metrics import NodeMetrics
from .service import OperatorService, ReceiptRecord
from .state_machine import AppliedEntry

log = logging.getLogger("ddx.node")

MARGIN_MS = 5_000  # a held request is submitted at the latest this long before its time (or its timestamp's expiry)
SWEEP_EVERY_S = 0.25  # how often deadlines are checked
FIRE_ATTEMPTS = 3  # submissions of a held request when the answer is "retry"
FIRE_RETRY_S = 0.5
SHUTDOWN_WAIT_S = 1.0  # how long a stopping server lets submissions already under way finish
RETRYABLE = frozenset({"no_leader", "not_sequenced", "outcome_unknown", "overloaded"})

CLOSED = "closed"  # the connection ended
LAPSED = "lapsed"  # the deadline passed while the connection was open


class CancelOnDisconnectRefused(AdmissionError):
    """A ScheduleCancel this operator will not hold (not a ScheduleCancel, another scope than the held one, not
    later than it, too close to its time); the request held before stays held."""


@dataclass(frozen=True, slots=True)
class Held:
    """The one ScheduleCancel a connection holds, and when at the latest it is submitted (this node's clock)."""

    signed: SignedRequest
    deadline_ms: int

    @property
    def request(self) -> ScheduleCancel:
        return self.signed.request

    @property
    def scope(self) -> tuple[bytes, bytes, bytes]:
        r = self.signed.request
        return r.trader, r.strategy, r.market


@dataclass(frozen=True, slots=True)
class FireOutcome:
    held: Held
    cause: str  # CLOSED or LAPSED
    record: ReceiptRecord | None  # its receipt's record once sequenced (also when the engine rejected it)
    reason: str | None = None  # None: fired; else why it failed
    detail: str = ""

    @property
    def fired(self) -> bool:
        return self.reason is None


Notify = Callable[[FireOutcome], Awaitable[None]]


def _rejection(applied: AppliedEntry | None) -> tuple[str, str] | None:
    """(reason, detail) when the engine rejected the sequenced ScheduleCancel, else None."""
    if applied is None:
        return None
    for routed in applied.updates:
        update = routed.update
        if isinstance(update, Rejected):
            try:
                name = Reject(update.reason).name.lower()
            except ValueError:
                name = f"reject_{update.reason}"
            return name, update.detail
    return None


class DisconnectSwitch:
    """One request-channel connection's switch: at most one held ScheduleCancel."""

    __slots__ = ("_registry", "notify", "held", "ended")

    def __init__(self, registry: "DisconnectCancels", notify: Notify | None) -> None:
        self._registry = registry
        self.notify = notify  # told the outcome of a lapse (the connection is still open to hear it)
        self.held: Held | None = None
        self.ended = False

    def arm(self, doc: object, origin: object | None = None) -> Held:
        """Hold (or refresh with) the ScheduleCancel `doc` (its decoded wire form); the Held, or a DdxError (an
        AdmissionError or RateLimited) with the held request unchanged."""
        try:
            return self._arm(doc, origin)
        except DdxError:
            self._registry._count("refused")
            raise

    def _arm(self, doc: object, origin: object | None) -> Held:
        reg = self._registry
        service = reg.service
        if self.ended or reg.closing:
            raise CancelOnDisconnectRefused("cod_unavailable", "this operator is stopping: connect to another one")
        if service.operator_address is None:
            raise AdmissionError("read_only_replica", "a replica sequences nothing: arm on an operator")
        if not isinstance(doc, dict) or doc.get("type") != ScheduleCancel.PRIMARY_TYPE:
            limiter = service.admission.rate_limiter
            if limiter is not None and origin is not None:
                limiter.charge_origin(origin, 1)  # refused before admission: costs its sender like a malformed one
            raise CancelOnDisconnectRefused("cod_not_schedule_cancel", "only a signed ScheduleCancel can be held")
        signed = service.admit(doc, origin)
        request: ScheduleCancel = signed.request
        held = self.held
        if held is not None and (request.trader, request.strategy, request.market) != held.scope:
            raise CancelOnDisconnectRefused(
                "cod_other_scope", "a refresh names the held request's trader, strategy and market: disarm first"
            )
        if held is not None and request.time <= held.request.time:
            raise CancelOnDisconnectRefused(
                "cod_not_later", "a refresh must have a later time than the held request", time=str(held.request.time)
            )
        now = service.admission.now_ms()
        deadline = min(request.time, request.timestamp + service.admission.limits.max_age_ms) - reg.margin_ms
        if request.time == 0 or deadline <= now:
            raise CancelOnDisconnectRefused(
                "cod_too_soon",
                f"time must be more than {reg.margin_ms} ms ahead and the timestamp less than "
                f"{service.admission.limits.max_age_ms - reg.margin_ms} ms old (time 0 clears: send it as a request)",
                now=str(now),
            )
        if service.machine.seen(signed.signer, request.nonce) is not None:
            raise AdmissionError("nonce_reused", "this nonce was already sequenced")
        self.held = Held(signed, deadline)
        reg._held(self, "armed" if held is None else "refreshed")
        return self.held

    def disarm(self) -> bool:
        """Drop the held request, if any (nothing is sequenced); whether one was held."""
        if self.held is None:
            return False
        self.held = None
        self._registry._released(self, "disarmed")
        return True

    def end(self) -> None:
        """The connection ended: submit the held request (unless the server is stopping: drop it)."""
        if self.ended:
            return
        self.ended = True
        self.notify = None
        self._fire(CLOSED)

    def _fire(self, cause: str) -> None:
        held, self.held = self.held, None
        if held is None:
            return
        reg = self._registry
        if reg.closing:
            reg._released(self, "dropped")
            return
        reg._released(self, None)
        reg._spawn(held, cause, self.notify if cause == LAPSED else None)


class DisconnectCancels:
    """Every connection's switch on this node, the deadline sweeper, the submissions of fired requests, metrics."""

    def __init__(
        self,
        service: OperatorService,
        metrics: NodeMetrics | None = None,
        *,
        margin_ms: int = MARGIN_MS,
        sweep_every_s: float = SWEEP_EVERY_S,
        fire_retry_s: float = FIRE_RETRY_S,
        shutdown_wait_s: float = SHUTDOWN_WAIT_S,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self.margin_ms = margin_ms
        self.sweep_every_s = sweep_every_s
        self.fire_retry_s = fire_retry_s
        self.shutdown_wait_s = shutdown_wait_s
        self.closing = False
        self._armed: set[DisconnectSwitch] = set()
        self._firing: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None
        self.outcomes: list[FireOutcome] = []  # the last few, newest last (status, tests)
        self.keep_outcomes = 100

    def open(self, notify: Notify | None = None) -> DisconnectSwitch:
        return DisconnectSwitch(self, notify)

    def held_count(self) -> int:
        return len(self._armed)

    def sweep(self) -> int:
        """Fire every held request whose deadline passed (lapsed); how many."""
        now = self.service.admission.now_ms()
        due = [s for s in self._armed if s.held is not None and s.held.deadline_ms <= now]
        for switch in due:
            switch._fire(LAPSED)
        return len(due)

    async def settle(self) -> None:
        """Wait for every submission under way (tests; shutdown bounds it instead)."""
        while self._firing:
            await asyncio.gather(*list(self._firing), return_exceptions=True)

    async def close(self) -> None:
        """The server is stopping: held requests are dropped, submissions under way get `shutdown_wait_s`."""
        self.closing = True
        for switch in list(self._armed):
            switch._fire(CLOSED)  # dropped: nothing is submitted once closing
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._firing:
            _, pending = await asyncio.wait(set(self._firing), timeout=self.shutdown_wait_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("cancel-on-disconnect: %d submissions cut short by the shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    # ------------------------------------------------------------ internals

    def _count(self, event: str) -> None:
        if self.metrics is not None:
            self.metrics.cancel_on_disconnect.labels(event).inc()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.cancel_on_disconnect_held.set(len(self._armed))

    def _held(self, switch: DisconnectSwitch, event: str) -> None:
        self._armed.add(switch)
        self._count(event)
        self._gauge()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    def _released(self, switch: DisconnectSwitch, event: str | None) -> None:
        self._armed.discard(switch)
        if event is not None:
            self._count(event)
        self._gauge()

    async def _sweep_forever(self) -> None:
        while self._armed:
            await asyncio.sleep(self.sweep_every_s)
            try:
                self.sweep()
            except Exception:
                log.exception("cancel-on-disconnect: sweep failed")

    def _spawn(self, held: Held, cause: str, notify: Notify | None) -> None:
        task = asyncio.get_running_loop().create_task(self._fire(held, cause, notify))
        self._firing.add(task)
        task.add_done_callback(self._firing.discard)

    async def _fire(self, held: Held, cause: str, notify: Notify | None) -> FireOutcome:
        outcome = await self._submit(held, cause)
        self._count("fired" if outcome.fired else "failed")
        self.outcomes.append(outcome)
        del self.outcomes[: -self.keep_outcomes]
        trader = "0x" + held.request.trader.hex()
        if outcome.fired:
            log.info("cancel-on-disconnect (%s) of %s sequenced at request %d, cancels at %d", cause, trader,
                     outcome.record.request_index, held.request.time)
        else:
            log.warning("cancel-on-disconnect (%s) of %s failed: %s (%s)", cause, trader, outcome.reason, outcome.detail)
        if notify is not None:
            try:
                await notify(outcome)
            except Exception:  # the connection went away meanwhile: nobody to tell
                log.debug("cancel-on-disconnect: could not notify the connection", exc_info=True)
        return outcome

    async def _submit(self, held: Held, cause: str) -> FireOutcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                record, applied = await self.service.submit_admitted(held.signed)
            except AdmissionError as exc:
                if exc.reason in RETRYABLE and attempt < FIRE_ATTEMPTS:
                    await asyncio.sleep(self.fire_retry_s)
                    continue
                return FireOutcome(held, cause, None, exc.reason, exc.detail)
            except Exception as exc:
                log.exception("cancel-on-disconnect: submission failed")
                return FireOutcome(held, cause, None, "internal", str(exc))
            rejected = _rejection(applied)
            if rejected is not None:
                return FireOutcome(held, cause, record, *rejected)
            return FireOutcome(held, cause, record)
