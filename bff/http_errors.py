"""One JSON error shape for every failure a client can meet.

flask-smorest's shape ``{"code", "status", "message", "errors"?}`` is used for every
status, including the ones raised outside a view (404 on an unknown path, 405, 413) and
unexpected exceptions (500, whose body never carries the exception's text). Redis being
unreachable is a 503 that tells the client to retry, not a 500.
"""

from __future__ import annotations

import logging

from flask import jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from .redis_client import REDIS_UNAVAILABLE_ERRORS
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
        return payload, status, headers


def register_error_handlers(app) -> None:
    for error_class in REDIS_UNAVAILABLE_ERRORS:
        app.register_error_handler(error_class, _redis_unavailable)


def _redis_unavailable(error: Exception):
    log.error("redis unavailable", extra={"error": type(error).__name__})
    response = jsonify(
        code=503,
        status="Service Unavailable",
        message="Task storage is unreachable; retry shortly.",
    )
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
