"""Errors at the HTTP edge: the one table from reason codes to HTTP statuses, and the JSON error body.

Every layer below raises a typed `DdxError` with a stable `reason`; nothing below the API knows HTTP. The body is
always `{"error": <reason>, "detail": <message>, ...extra}` (docs/api.md, "Errors").
"""

from __future__ import annotations

from typing import Any

from ..errors import DdxError
from ..node.admission import AdmissionError, RefusedWhenApplied
from ..node.rate_limits import RateLimited

# Reasons a client can fix or retry, by the status that says how. Any other reason of a DdxError is a 400.
STATUS_BY_REASON: dict[str, int] = {
    # the signature does not authenticate the trader
    "bad_signature": 401,
    "malleable_signature": 401,
    "signer_mismatch": 401,
    # signed by a key the trader has not (or no longer) approved for this
    "agent_expired": 403,
    "agent_request_predates_approval": 403,
    # nothing there
    "not_found": 404,
    "unknown_request": 404,
    "unknown_market": 404,
    "history_disabled": 404,
    "no_frozen_epoch": 404,
    "unknown_epoch": 404,
    "no_recorded_epoch": 404,
    "no_chain_side": 404,
    "method_not_allowed": 405,
    # a rate limit (docs/api.md, "Rate limits"): retry after Retry-After / retryAfterMs
    "rate_limited": 429,
    # the nonce is taken
    "nonce_reused": 409,
    "resume_unavailable": 410,
    "body_too_large": 413,
    "not_leader": 421,
    "read_only_replica": 421,
    "disputed_epoch": 409,
    # retry, here or elsewhere, shortly
    "overloaded": 503,
    "not_sequenced": 503,
    "outcome_unknown": 503,
    "no_leader": 503,
    "too_many_subscribers": 503,
}
# A request sequenced and then refused by the state machine holds its request index: a conflict, whatever the reason.
STATUS_BY_CLASS: tuple[tuple[type[DdxError], int], ...] = ((RefusedWhenApplied, 409),)


class ApiError(DdxError):
    """A refusal by the API itself (a bad query or path, no such thing): a reason, a detail, and extra fields."""

    def __init__(self, reason: str, detail: str, **extra: object) -> None:
        super().__init__(detail, reason=reason)
        self.detail = detail
        self.extra = extra


def http_status(error: DdxError) -> int:
    for cls, status in STATUS_BY_CLASS:
        if isinstance(error, cls):
            return status
    return STATUS_BY_REASON.get(error.reason, 400)


def error_body(error: DdxError) -> dict[str, Any]:
    extra = error.extra if isinstance(error, (AdmissionError, ApiError)) else {}
    return {"error": error.reason, "detail": str(error), **extra}


def error_headers(error: DdxError) -> dict[str, str]:
    """HTTP headers of an error answer: `Retry-After` (whole seconds, rounded up) on a rate-limit refusal."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after_s)}
    return {}
