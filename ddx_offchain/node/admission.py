"""Admission: the cheap, stateless checks a request passes before it may be proposed to Raft (docs/api.md).

Order: schema and field rules, domain, client-timestamp window, then signature recovery (the only expensive step,
last). The request arrives decoded: the API bounded its size and parsed its JSON once, at the edge. Every failure is an AdmissionError with a machine-readable reason (the API maps
reasons to HTTP statuses); nothing that fails here is ever proposed. The clock is injected, so this module reads no time itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


class Admission:
    def __init__(self, domain: Domain, now_ms: Callable[[], int], limits: AdmissionLimits = AdmissionLimits()) -> None:
        self.domain = domain
        self._domain_cache = DomainCache(domain)
        self._now_ms = now_ms
        self.limits = limits

    def admit(self, doc: object) -> SignedRequest:
        """The verified request of a decoded JSON document (docs/protocol.md §7.2), or AdmissionError. Stateless:
        nonce uniqueness is the node's (it needs state)."""
        try:
            request, signature, domain = request_from_json(doc)
        except RequestRejected as exc:
            raise AdmissionError(exc.reason, str(exc)) from None
        if domain is not None and (
            domain["chainId"] != self.domain.chain_id or domain["verifyingContract"] != self.domain.verifying_contract
        ):
            raise AdmissionError(
                "wrong_domain",
                "the request names another chain or exchange contract",
                chainId=str(self.domain.chain_id),
                verifyingContract="0x" + self.domain.verifying_contract.hex(),
            )
        now = self._now_ms()
        if request.timestamp < now - self.limits.max_age_ms:
            raise AdmissionError("stale_timestamp", f"timestamp older than {self.limits.max_age_ms} ms", now=str(now))
        if request.timestamp > now + self.limits.max_future_ms:
            raise AdmissionError("future_timestamp", f"timestamp more than {self.limits.max_future_ms} ms ahead", now=str(now))
        try:
            return verify_request(request, signature, self._domain_cache, agents=True)
        except RequestRejected as exc:
            raise AdmissionError(exc.reason, str(exc)) from None
