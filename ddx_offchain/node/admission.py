"""Admission: the cheap, stateless checks a request passes before it may be proposed to Raft (docs/api.md).

Order: body size, JSON, schema and field rules, domain, client-timestamp window, then signature recovery (the
only expensive step, last). Every failure is an AdmissionError with an HTTP status and a machine-readable reason;
nothing that fails here is ever proposed. The clock is injected, so this module reads no time itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ..protocol.eip712 import Domain, DomainCache
from ..protocol.requests import RequestRejected, SignedRequest, request_from_json, verify_request

MAX_BODY_BYTES = 4096  # the largest request (ModifyOrder) is ~900 bytes of JSON
MAX_AGE_MS = 60_000  # a request older than this (by its timestamp) is refused: stale
MAX_FUTURE_MS = 5_000  # tolerated client clock skew ahead of ours

_SIGNATURE_REASONS = {"bad_signature", "malleable_signature", "signer_mismatch"}


class AdmissionError(Exception):
    """A refusal with an HTTP status and a reason code; `extra` adds fields to the JSON error body."""

    def __init__(self, status: int, reason: str, detail: str, **extra) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.extra = extra

    def to_json(self) -> dict:
        return {"error": self.reason, "detail": self.detail, **self.extra}


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    max_age_ms: int = MAX_AGE_MS
    max_future_ms: int = MAX_FUTURE_MS


class Admission:
    def __init__(self, domain: Domain, now_ms: Callable[[], int], limits: AdmissionLimits = AdmissionLimits()) -> None:
        self.domain = domain
        self._domain_cache = DomainCache(domain)
        self._now_ms = now_ms
        self.limits = limits

    def admit(self, body: bytes) -> SignedRequest:
        """The verified request, or AdmissionError. Stateless: nonce uniqueness is the node's (it needs state)."""
        if len(body) > self.limits.max_body_bytes:
            raise AdmissionError(413, "body_too_large", f"request body exceeds {self.limits.max_body_bytes} bytes")
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise AdmissionError(400, "malformed_json", f"not JSON: {exc}") from None
        try:
            request, signature, domain = request_from_json(doc)
        except RequestRejected as exc:
            raise AdmissionError(400, exc.reason, str(exc)) from None
        if domain is not None and (
            domain["chainId"] != self.domain.chain_id or domain["verifyingContract"] != self.domain.verifying_contract
        ):
            raise AdmissionError(
                400,
                "wrong_domain",
                "the request names another chain or exchange contract",
                chainId=str(self.domain.chain_id),
                verifyingContract="0x" + self.domain.verifying_contract.hex(),
            )
        now = self._now_ms()
        if request.timestamp < now - self.limits.max_age_ms:
            raise AdmissionError(400, "stale_timestamp", f"timestamp older than {self.limits.max_age_ms} ms", now=str(now))
        if request.timestamp > now + self.limits.max_future_ms:
            raise AdmissionError(400, "future_timestamp", f"timestamp more than {self.limits.max_future_ms} ms ahead", now=str(now))
        try:
            return verify_request(request, signature, self._domain_cache)
        except RequestRejected as exc:
            status = 401 if exc.reason in _SIGNATURE_REASONS else 400
            raise AdmissionError(status, exc.reason, str(exc)) from None
