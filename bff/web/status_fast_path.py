"""The status read without Flask's per-request machinery.

Clients poll ``GET /tasks/{id}/status`` every few seconds for minutes per task: it is most
of the traffic. Through Flask, flask-smorest and webargs a read costs several times what
its one Redis round trip costs; this WSGI layer, in front of the Flask app, answers the
plain form of it (``?service=tripo|openai``, a task id as the BFF makes them) with the same
pieces the Flask route uses: the request id, the client (``bff.web.clients.client_of``),
the one-round-trip read (``bff.web.status_reads``), the error answers (``bff.web.errors``)
and the access line and metrics (``bff.web.access``).

Everything else goes to Flask untouched: other routes, other query forms (``include=``,
and every 422, which stays flask-smorest's own), and any request whose credentials are
refused (Flask answers those as always; nothing was counted yet). So a per-request hook
added to the Flask app must be mirrored here (``tests/web/test_status_fast_path.py``
lists the hooks).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable

from werkzeug.http import HTTP_STATUS_CODES

from bff.logs import new_request_id, set_request_id
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.tasks.record import Service
from bff.tasks.services import Services
from bff.tasks.store import TransactionContention

from .access import record_request
from .clients import Identity, client_of
from .errors import ErrorAnswer, error_answer, redis_unavailable_answer, refusal_answer
from .refusals import Refusal
from .status_reads import StatusReader
from .task_view import base_url

log = logging.getLogger(__name__)

STATUS_ENDPOINT = "tasks.task_status"  # the Flask route's name: metrics count both paths as one
_STATUS_PATH = re.compile(r"/tasks/([A-Za-z0-9_-]{1,64})/status")
_SERVICES = frozenset(map(str, Service))
_INTERNAL_ERROR = "Internal error. It has been logged; retry, and report the X-Request-ID if it persists."

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class StatusFastPath:
    def __init__(self, flask_app: WsgiApp, services: Services, identity: Identity, reader: StatusReader):
        self._flask_app = flask_app
        self._services = services
        self._identity = identity
        self._reader = reader

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        plain = _plain_status_read(environ)
        if plain is None:
            return self._flask_app(environ, start_response)
        started = time.monotonic()
        request_id = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        set_request_id(request_id)
        try:
            client, _ = client_of(self._identity, STATUS_ENDPOINT, _header_reader(environ), environ.get("REMOTE_ADDR"))
        except Refusal:
            set_request_id(None)
            return self._flask_app(environ, start_response)  # refused as every route refuses
        try:
            status, body, headers = self._answer(environ, client, *plain)
            start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                *headers, ("X-Request-ID", request_id)])
            record_request(self._services.metrics, STATUS_ENDPOINT, "GET", environ["PATH_INFO"], status, started)
            return [body]
        finally:
            set_request_id(None)

    def _answer(self, environ: dict, client: str, task_id: str,
                service: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        try:
            read = self._reader.read(self._services.settings, client, task_id, service)
            return 200, read.json(base_url(environ)).encode(), []
        except Refusal as refusal:
            answer = refusal_answer(refusal)
        except (*REDIS_UNAVAILABLE_ERRORS, TransactionContention) as error:
            answer = redis_unavailable_answer(error)
        except Exception:
            log.exception("status read failed")
            answer = error_answer(500, _INTERNAL_ERROR)
        return answer.status, _json(answer), list(answer.headers.items())


def _plain_status_read(environ: dict) -> tuple[str, str] | None:
    """(task id, service) of a status read in its plain form."""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    path = _STATUS_PATH.fullmatch(environ.get("PATH_INFO", ""))
    name, _, service = environ.get("QUERY_STRING", "").partition("=")
    return (path.group(1), service) if path and name == "service" and service in _SERVICES else None


def _header_reader(environ: dict) -> Callable[[str, str], str | None]:
    def header(name: str, default: str) -> str | None:
        return environ.get("HTTP_" + name.upper().replace("-", "_"), default)

    return header


def _json(answer: ErrorAnswer) -> bytes:
    """As Flask's jsonify writes it: keys sorted, compact, a final newline."""
    return (json.dumps(answer.body, sort_keys=True, separators=(",", ":")) + "\n").encode()
