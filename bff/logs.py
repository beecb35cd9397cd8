"""Structured logging: one JSON object a line, carrying the request id and task id.

The request id is set per HTTP request (and returned as ``X-Request-ID``); the worker
sets the same id from the task record, so one id follows a task from the POST into the
worker's lines. Every line is scrubbed of the configured secrets before it is written,
so a provider key cannot reach a log even through an exception message.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from contextlib import contextmanager

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
REDACTED = "[redacted]"


def new_request_id(incoming: str | None = None) -> str:
    """Keep a caller's id when it is safe to echo and log; otherwise make one."""
    if incoming and _SAFE_REQUEST_ID.match(incoming):
        return incoming
    return secrets.token_hex(12)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(request_id: str | None) -> None:
    _request_id.set(request_id)


@contextmanager
def task_context(task_id: str, request_id: str | None):
    """Tag log lines written inside the block with a task and its request id."""
    task_token, request_token = _task_id.set(task_id), _request_id.set(request_id)
    try:
        yield
    finally:
        _task_id.reset(task_token)
        _request_id.reset(request_token)


def redact(text: str, secrets_to_hide: tuple[str, ...]) -> str:
    """``text`` with every secret replaced: the one scrubber for logs and provider messages."""
    for secret in secrets_to_hide:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets_to_hide: tuple[str, ...] = ()):
        super().__init__()
        self._secrets = tuple(s for s in secrets_to_hide if s)

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        line = {key: _textual(value) for key, value in line.items() if value is not None}
        return self._scrub(json.dumps(line, default=str))

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)


# redis-py quotes a failed pipeline's whole command in its error, images included: runs
# of undecodable or control characters become a marker, and a value is cut at a length
# no readable message reaches.
_BINARY_CHAR = r"(?:[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]|\\x[0-9a-f]{2})"
# Binary characters, and the short readable scraps between them (a PNG's "IHDR", "IDAT").
_BINARY_RUN = re.compile(rf"{_BINARY_CHAR}(?:.{{0,12}}?{_BINARY_CHAR})+", re.DOTALL)
MAX_VALUE_CHARS = 4000


def _textual(value):
    if isinstance(value, bytes):
        return f"[{len(value)} bytes]"
    if isinstance(value, str):
        if len(value) <= MAX_VALUE_CHARS and value.isascii() and value.isprintable() and "\\x" not in value:
            return value  # the usual case (no binary character, no quoted byte), told without a regex
        text = _BINARY_RUN.sub(lambda run: "[binary]" if len(run.group()) >= 8 else run.group(), value)
        return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "...[cut]"
    return value


def _stamp_context(factory):
    """Record the request and task ids when a line is logged, in the thread that logs it."""

    def make_record(*args, **kwargs):
        record = factory(*args, **kwargs)
        record.request_id = _request_id.get()
        record.task_id = _task_id.get()
        return record

    make_record.stamps_bff_context = True  # type: ignore[attr-defined]
    return make_record


def configure_logging(level: str, secrets_to_hide: tuple[str, ...] = ()) -> None:
    """Send every logger (ours, Flask's, Dramatiq's, gunicorn's) through one JSON handler."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "stamps_bff_context", False):
        logging.setLogRecordFactory(_stamp_context(factory))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets_to_hide))
    # No line carries the caller's file and line, thread or process: not computing them
    # saves a stack walk per line (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # a Python warning is a log line like any other, not raw text
    for name in ("gunicorn.error", "dramatiq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # urllib3 logs full URLs at DEBUG; signed provider URLs are credentials while they live.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLevelName(level)))


def log_mode(settings) -> None:
    """Say at start whether this process spends real money."""
    if settings.bff_sandbox:
        logging.getLogger("bff").warning("SANDBOX MODE: providers are local stand-ins; no real calls, no cost",
                                         extra={"sandbox": True})
    else:
        logging.getLogger("bff").info("live mode: real provider calls", extra={"sandbox": False})
