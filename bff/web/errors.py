"""One JSON error shape for every failure a client can meet.

flask-smorest's shape ``{"code", "status", "message", "reason"?, "errors"?}`` is used for every
status, including the ones raised outside a view (404 on an unknown path, 405, 413) and
unexpected exceptions (500, whose body never carries the exception's text). Redis being
unreachable (or too contended to write), or the file storage, is a 503 that tells the
client to retry, not a 500.
This is the one place that turns a refusal (``bff.web.refusals``) into an HTTP answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus

from flask import jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.results.object_store import StorageUnavailable
from bff.tasks.store import TransactionContention

from .refusals import (
    CreditsExhausted,
    InFlight,
    InvalidInput,
    RateLimited,
    Refusal,
    ServiceBudgetExhausted,
    TaskNotFound,
    TaskNotReady,
    TokenRefused,
    Unauthenticated,
    Unavailable,
)
from .schemas import ErrorResponse

log = logging.getLogger(__name__)

# How long a client should wait before retrying after a 503.
RETRY_AFTER_SECONDS = 5

_DEFAULT_MESSAGES = {
    400: "The request could not be read; see 'errors'.",
    404: "Not found.",
    405: "This method is not allowed on this path.",
    413: "The request body is too large.",
    422: "The request is invalid; see 'errors' for each field.",
    500: "Internal error. It has been logged; retry, and report the X-Request-ID if it persists.",
    503: "The service is temporarily unavailable; retry shortly.",
}


class BffApi(Api):
    """flask-smorest's Api, with a message on every error and the error shape documented
    with examples. (Flask itself logs the exception behind a 500, through the JSON handler.)"""

    ERROR_SCHEMA = ErrorResponse

    def handle_http_exception(self, error: HTTPException):
        payload, status, headers = super().handle_http_exception(error)
        payload.setdefault("message", _DEFAULT_MESSAGES.get(status) or error.description)
        if "errors" in payload:
            # marshmallow keys a list's errors by index: mixed with names, JSON cannot sort them.
            payload["errors"] = _with_text_keys(payload["errors"])
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**(headers or {}), "Allow": ", ".join(error.valid_methods)}
        return payload, status, headers


_REFUSAL_STATUSES: dict[type[Refusal], int] = {
    Unauthenticated: 401,  # TokenRefused too: a refusal's status is its nearest class's here
    TaskNotFound: 404,
    TaskNotReady: 409,
    InFlight: 409,
    InvalidInput: 422,
    RateLimited: 429,
    CreditsExhausted: 429,
    Unavailable: 503,
    ServiceBudgetExhausted: 503,
}


def _with_text_keys(errors):
    if isinstance(errors, dict):
        return {str(key): _with_text_keys(value) for key, value in errors.items()}
    return errors


# What a request may raise that is not a 500; ``answer_for`` says how each is answered.
_ANSWERED = (Refusal, *REDIS_UNAVAILABLE_ERRORS, TransactionContention, StorageUnavailable)


def register_error_handlers(app) -> None:
    for error_class in _ANSWERED:
        app.register_error_handler(error_class, lambda error: _as_response(answer_for(error)))


@dataclass(frozen=True)
class ErrorAnswer:
    """An error answer in the one shape, before it becomes a Flask (or a plain WSGI) response."""

    status: int
    body: dict
    headers: dict[str, str]


def error_answer(status: int, message: str, *, errors: dict | None = None,
                 headers: dict[str, str] | None = None, reason: str | None = None) -> ErrorAnswer:
    body: dict = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if reason:
        body["reason"] = reason
    if errors:
        body["errors"] = errors
    return ErrorAnswer(status, body, headers or {})


def _as_response(answer: ErrorAnswer):
    response = jsonify(answer.body)
    response.status_code = answer.status
    response.headers.update(answer.headers)
    return response


def answer_for(error: Exception) -> ErrorAnswer:
    """The answer to ``error`` raised while a request was handled (by Flask's handlers or
    the fast paths): a refusal's own, a 503 for Redis or the file storage, else a 500
    (logged with its traceback; the body never carries the exception's text)."""
    if isinstance(error, Refusal):
        return _refusal_answer(error)
    if isinstance(error, (*REDIS_UNAVAILABLE_ERRORS, TransactionContention)):
        log.error("redis unavailable", extra={"error": type(error).__name__})
        return error_answer(503, "Task storage is unreachable; retry shortly.",
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(error, StorageUnavailable):
        log.error("file storage unavailable", extra={"error": error.detail})
        return error_answer(503, "File storage is unreachable; retry shortly.",
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.error("request failed", exc_info=error)
    return error_answer(500, _DEFAULT_MESSAGES[500])


def _refusal_answer(refusal: Refusal) -> ErrorAnswer:
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after is not None else {}
    if isinstance(refusal, TokenRefused):
        # RFC 6750 section 3; the reasons are fixed phrases (bff.identity.errors), never token text.
        headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{refusal.reason}"'
    status = next(_REFUSAL_STATUSES[kind] for kind in type(refusal).__mro__ if kind in _REFUSAL_STATUSES)
    return error_answer(status, refusal.message, errors=refusal.field_errors,
                        headers=headers, reason=refusal.reason)
