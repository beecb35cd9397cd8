"""Provider error classification: the one place that decides what a provider failure means.

Every failure of a provider call becomes a ``ProviderError`` with one of three outcomes:

- ``RETRY``: the call may be made again after a backoff: a 429, a refused connection, a
  failed read, or an OpenAI 500/502/503 (OpenAI reports those failures itself).
  ``max_attempts`` caps the tries of each kind of fault.
- ``FINAL``: the provider answered and refused; the task fails with ``error_code``.
- ``UNKNOWN``: a create call whose fate we cannot know (timeout or dropped connection
  after sending, a Tripo 5xx). It may have created and billed a task, so it is never
  re-sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
import urllib3

RETRY = "retry"
FINAL = "final"
UNKNOWN = "unknown"

# Tries in all for a fault that cost nothing (the request never left), and for one that
# may have been billed (an OpenAI 5xx: a retried edit is billed again if the first ran).
UNSENT_FAULT_ATTEMPTS = 5
BILLABLE_FAULT_ATTEMPTS = 3


@dataclass
class ProviderError(Exception):
    outcome: str
    error_code: str
    detail: str
    provider_code: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    rate_limited: bool = False  # a 429: waiting for capacity, not a fault
    max_attempts: int = UNSENT_FAULT_ATTEMPTS

    def __str__(self) -> str:
        return f"{self.outcome}/{self.error_code}: {self.detail}"


# Tripo's 429 codes: the concurrency limit and the per-minute creation rate.
_TRIPO_RATE_LIMIT_CODES = (2000, 1007)
# Tripo's business codes (providers.md, "Limits and errors") -> (outcome, BFF error code).
_TRIPO_CODES: dict[int, tuple[str, str]] = {
    **{code: (RETRY, "provider_unavailable") for code in _TRIPO_RATE_LIMIT_CODES},
    1004: (FINAL, "invalid_request"),
    2008: (FINAL, "content_policy"),
    2010: (FINAL, "provider_insufficient_credit"),
    2015: (FINAL, "provider_model_invalid"),
    2017: (FINAL, "provider_model_invalid"),
    2001: (FINAL, "provider_task_lost"),
    2: (FINAL, "provider_auth_failed"),
    1002: (FINAL, "provider_auth_failed"),
}


def classify_tripo_response(
    http_status: int, body: dict | None, *, creates: bool, request_id: str | None, retry_after: float | None
) -> ProviderError:
    """Classify a Tripo answer that is an error (HTTP >= 400, or ``code != 0``)."""
    body = body or {}
    code = body.get("code")
    detail = str(body.get("message") or f"HTTP {http_status}")[:300]
    if http_status == 429:
        outcome, error_code = RETRY, "provider_unavailable"
    elif http_status == 401:
        outcome, error_code = FINAL, "provider_auth_failed"
    elif isinstance(code, int) and code in _TRIPO_CODES:
        outcome, error_code = _TRIPO_CODES[code]
    elif http_status >= 500 or http_status == 200:
        # A 5xx, or a 200 that is not a success: the provider may have acted on it.
        outcome, error_code = (UNKNOWN, "provider_outcome_unknown") if creates else (RETRY, "provider_unavailable")
    else:
        outcome, error_code = FINAL, "provider_error"
    return ProviderError(
        outcome=outcome,
        error_code=error_code,
        detail=detail,
        provider_code=None if code is None else str(code),
        request_id=request_id,
        retry_after=retry_after if outcome == RETRY else None,
        rate_limited=http_status == 429 or code in _TRIPO_RATE_LIMIT_CODES,
    )


# OpenAI error codes that are final, whatever the HTTP status -> BFF error code.
_OPENAI_CODES: dict[str, str] = {
    "moderation_blocked": "content_policy",
    "content_policy_violation": "content_policy",
    "insufficient_quota": "provider_insufficient_credit",
    "model_not_found": "provider_model_invalid",
    "invalid_api_key": "provider_auth_failed",
}
_OPENAI_STATUSES: dict[int, str] = {
    400: "invalid_request",
    401: "provider_auth_failed",
    403: "provider_access_denied",
    404: "provider_model_invalid",
}
_OPENAI_RETRYABLE_STATUSES = (500, 502, 503)


def classify_openai_response(
    http_status: int, body: dict | None, *, request_id: str | None, retry_after: float | None
) -> ProviderError:
    """Classify an OpenAI answer that is an error (HTTP >= 400)."""
    error: dict = (body or {}).get("error") or {}
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    detail = str(error.get("message") or f"HTTP {http_status}")[:300]
    details: dict[str, Any] = {"provider_code": code, "request_id": request_id}
    if code in _OPENAI_CODES:
        return ProviderError(FINAL, _OPENAI_CODES[code], detail, **details)
    if http_status == 429:
        return ProviderError(RETRY, "provider_unavailable", detail, retry_after=retry_after, rate_limited=True,
                             **details)
    if http_status in _OPENAI_RETRYABLE_STATUSES:
        return ProviderError(RETRY, "provider_unavailable", detail, retry_after=retry_after,
                             max_attempts=BILLABLE_FAULT_ATTEMPTS, **details)
    if http_status >= 500:
        return ProviderError(UNKNOWN, "provider_outcome_unknown", detail, **details)
    return ProviderError(FINAL, _OPENAI_STATUSES.get(http_status, "provider_error"), detail, **details)


def classify_transport_error(error: requests.RequestException, *, creates: bool) -> ProviderError:
    """Classify a call that got no HTTP answer at all."""
    if _failed_before_sending(error) or not creates:
        return ProviderError(RETRY, "provider_unavailable", f"cannot reach provider: {type(error).__name__}")
    return ProviderError(UNKNOWN, "provider_outcome_unknown", f"no answer after sending: {type(error).__name__}")


def unreadable_answer(*, creates: bool, request_id: str | None) -> ProviderError:
    """A 2xx whose body is not what the contract promises."""
    if creates:
        return ProviderError(UNKNOWN, "provider_outcome_unknown", "unreadable answer", request_id=request_id)
    return ProviderError(RETRY, "provider_unavailable", "unreadable answer", request_id=request_id)


def _failed_before_sending(error: requests.RequestException) -> bool:
    """True only when the request provably never left: no connection, or no DNS answer."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(error, requests.exceptions.ConnectionError):
        return False
    reason = error.args[0] if error.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds)."""
    for name, scale in (("retry-after-ms", 0.001), ("Retry-After", 1.0)):
        try:
            seconds = float(headers.get(name)) * scale
        except (TypeError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None
