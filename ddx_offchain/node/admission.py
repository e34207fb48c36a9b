"""Admission: the cheap, stateless checks a request passes before it may be proposed to Raft (docs/api.md).

Order: schema and field rules, the rate limits of the request's origin (IP, connection) and of its trader (checked,
not charged), domain, client-timestamp window, then signature recovery (the only expensive step, last), and only
then the trader's bucket is charged (node/rate_limits.py). The request arrives decoded: the API bounded its size and parsed its JSON once, at the edge. Every failure is an AdmissionError with a machine-readable reason (the API maps
reasons to HTTP statuses); nothing that fails here is ever proposed. The clock is injected, so this module reads no time itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import DdxError
from ..protocol.eip712 import Domain, DomainCache
from ..protocol.requests import RequestRejected, SignedRequest, request_from_json, verify_request

MAX_BODY_BYTES = 24_576  # the largest request, a Batch of 50 actions, is ~19 KB of JSON: the API's default bound
MAX_AGE_MS = 60_000  # a request older than this (by its timestamp) is refused: stale
MAX_FUTURE_MS = 5_000  # tolerated client clock skew ahead of ours


class AdmissionError(DdxError):
    """A request refused before or while it is sequenced: a reason code, a human `detail`, and `extra` facts the
    client can act on (the leader to send to, the node's clock, the request index holding a nonce)."""

    reason = "refused"

    def __init__(self, reason: str, detail: str, **extra: object) -> None:
        super().__init__(detail, reason=reason)
        self.detail = detail
        self.extra = extra


class RefusedWhenApplied(AdmissionError):
    """Sequenced, then refused by the replicated state machine (expired by the time it applied, malformed): the
    request holds a request index but changed nothing."""


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    max_age_ms: int = MAX_AGE_MS
    max_future_ms: int = MAX_FUTURE_MS


def request_cost(request: object) -> int:
    """What a request takes from each rate-limit bucket: its number of actions (a batch), else 1."""
    return len(getattr(request, "actions", ())) or 1


class RequestLimiter(Protocol):
    """The rate limits admission applies (node/rate_limits.py RateLimiter); each raises an AdmissionError."""

    def charge_origin(self, origin: object, cost: int) -> None: ...

    def check_trader(self, trader: bytes, cost: int) -> None: ...

    def charge_trader(self, trader: bytes, cost: int) -> None: ...


def _verify_all(items: list[tuple[object, bytes, DomainCache, bool]]) -> list[SignedRequest | RequestRejected]:
    """verify_request for each item (on a worker thread): its SignedRequest, or the RequestRejected it raised."""
    out: list[SignedRequest | RequestRejected] = []
    for request, signature, domain_cache, agents in items:
        try:
            out.append(verify_request(request, signature, domain_cache, agents=agents))
        except RequestRejected as exc:
            out.append(exc)
    return out


class SignatureVerifier:
    """Signature checks (`verify_request`: field rules, EIP-712 digest, signer recovery) on worker threads, fed in
    batches: the requests admitted during one event-loop turn go to one thread as one job, so the hand-off costs
    two thread switches per batch, not per request. Recovery runs in coincurve (cffi releases the GIL during the
    call) and the digest in C keccak, so the leader's loop goes on meanwhile. It only pays when the operator has a
    core that the loop does not use (docs/operations.md has the measurement): off unless configured
    (`api.admission_threads`)."""

    def __init__(self, threads: int, max_batch: int = 256) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="admission")
        self._max_batch = max_batch
        self._queue: list[tuple[object, bytes, DomainCache, bool, asyncio.Future]] = []
        self._scheduled = False
        self.batches = 0  # jobs handed to the threads (requests / batches = the batching achieved)

    def verify(self, request: object, signature: bytes, domain_cache: DomainCache, agents: bool) -> asyncio.Future:
        """A future of verify_request(request, signature, domain_cache, agents=agents): a SignedRequest, or the
        RequestRejected it raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((request, signature, domain_cache, agents, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush, loop)  # after this turn's other requests have queued too
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), self._max_batch):
            chunk = queue[start:start + self._max_batch]
            self.batches += 1
            job = loop.run_in_executor(self._pool, _verify_all, [item[:4] for item in chunk])
            job.add_done_callback(lambda done, chunk=chunk: _settle(chunk, done))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _settle(chunk: list, done: asyncio.Future) -> None:
    if done.cancelled() or done.exception() is not None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        for *_, future in chunk:
            if not future.done():
                future.set_exception(error)
        return
    for (*_, future), outcome in zip(chunk, done.result()):
        if future.done():
            continue
        if isinstance(outcome, RequestRejected):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class Admission:
    def __init__(
        self,
        domain: Domain,
        now_ms: Callable[[], int],
        limits: AdmissionLimits = AdmissionLimits(),
        rate_limiter: RequestLimiter | None = None,
        agent_problem: Callable[[bytes, bytes, bytes, int], str | None] | None = None,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        """`agent_problem(trader, signer, strategy, timestamp)`: why `signer` may not sign this trading request of
        `trader`'s (the node's current state, Engine.agent_problem), or None; without it only traders sign.
        `verifier`: check signatures on its worker threads (`admit_async`); None: on the caller's thread."""
        self.verifier = verifier
        self.domain = domain
        self._agent_problem = agent_problem
        self._domain_cache = DomainCache(domain)
        self._now_ms = now_ms
        self.limits = limits
        self.rate_limiter = rate_limiter

    def now_ms(self) -> int:
        """This node's clock (the injected one), which the timestamp window is measured on."""
        return self._now_ms()

    def check_timestamp(self, request: object) -> None:
        """The client-timestamp window: `now - max_age_ms <= timestamp <= now + max_future_ms`, else AdmissionError."""
        now = self._now_ms()
        if request.timestamp < now - self.limits.max_age_ms:
            raise AdmissionError("stale_timestamp", f"timestamp older than {self.limits.max_age_ms} ms", now=str(now))
        if request.timestamp > now + self.limits.max_future_ms:
            raise AdmissionError("future_timestamp", f"timestamp more than {self.limits.max_future_ms} ms ahead", now=str(now))

    def admit(self, doc: object, origin: object | None = None) -> SignedRequest:
        """The verified request of a decoded JSON document (docs/protocol.md §7.2), or AdmissionError. Stateless
        but for the rate limits: nonce uniqueness is the node's (it needs state). `origin`: where it came from
        (the API's rate-limit origin; None: no IP or connection limit)."""
        request, signature, cost = self._before_signature(doc, origin)
        try:
            signed = verify_request(request, signature, self._domain_cache, agents=self._agent_problem is not None)
        except RequestRejected as exc:
            raise AdmissionError(exc.reason, str(exc)) from None
        return self._after_signature(signed, cost)

    async def admit_async(self, doc: object, origin: object | None = None) -> SignedRequest:
        """`admit`, with the signature checked on the verifier's threads when there is one: the same checks in
        the same order, the same errors, the same rate-limit charges (the checks before and after the signature
        run on the caller's thread: the rate limiter and the node's state are not shared with the threads)."""
        if self.verifier is None:
            return self.admit(doc, origin)
        request, signature, cost = self._before_signature(doc, origin)
        try:
            signed = await self.verifier.verify(request, signature, self._domain_cache, self._agent_problem is not None)
        except RequestRejected as exc:
            raise AdmissionError(exc.reason, str(exc)) from None
        return self._after_signature(signed, cost)

    def _before_signature(self, doc: object, origin: object | None) -> tuple[object, bytes, int]:
        """Parse, charge the origin, check (not charge) the trader's bucket, the domain and the timestamp."""
        limiter = self.rate_limiter
        cost = 1
        try:
            request, signature, domain = request_from_json(doc)
        except RequestRejected as exc:
            if limiter is not None and origin is not None:
                limiter.charge_origin(origin, 1)  # a malformed request costs its sender too
            raise AdmissionError(exc.reason, str(exc)) from None
        if limiter is not None:
            cost = request_cost(request)
            if origin is not None:
                limiter.charge_origin(origin, cost)
            limiter.check_trader(request.trader, cost)
        if domain is not None and (
            domain["chainId"] != self.domain.chain_id or domain["verifyingContract"] != self.domain.verifying_contract
        ):
            raise AdmissionError(
                "wrong_domain",
                "the request names another chain or exchange contract",
                chainId=str(self.domain.chain_id),
                verifyingContract="0x" + self.domain.verifying_contract.hex(),
            )
        self.check_timestamp(request)
        return request, signature, cost

    def _after_signature(self, signed: SignedRequest, cost: int) -> SignedRequest:
        """The agent's approval against this node's state, then the trader's bucket is charged."""
        request = signed.request
        limiter = self.rate_limiter
        if signed.by_agent:  # refused early against this node's state; the state machine decides at apply
            problem = self._agent_problem(request.trader, signed.signer, request.strategy, request.timestamp)
            if problem is not None:
                raise AdmissionError(problem, "the signer is not an approved, unexpired agent of the trader for this "
                                     "strategy, or the request predates the approval")
        if limiter is not None:
            limiter.charge_trader(request.trader, cost)
        return signed
