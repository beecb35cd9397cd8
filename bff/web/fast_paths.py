"""The hottest requests without Flask's per-request machinery: a WSGI layer in front of the
Flask app.

Clients poll ``GET /tasks/{id}/status`` every few seconds for minutes per task (most of the
traffic), and every task starts with a ``POST /generate/*``. Through Flask, flask-smorest and
webargs such a request costs several times what its Redis round trips cost. This layer
answers them with the same pieces the Flask routes use: the request id, the client
(``bff.web.clients.client_of``), the schema that validates the body, the one-round-trip
status read (``bff.web.status_reads``) or the intake (``bff.web.intake``), the error answers
(``bff.web.errors``) and the access line and metrics (``bff.web.access``):

- a status read in its plain form (``?service=tripo|openai``, a task id as the BFF makes them);
- a generation with a JSON body (``bff.web.routes.generate.JSON_GENERATIONS``) that is valid:
  ``application/json``, its length given and within the request limit, and the route's
  schema loads it. A body that is not (every 400 and 422) goes to Flask, byte for byte,
  before anything was counted or written, and gets Flask's own answer.

Refused credentials are answered here, as Flask's ``identify_client`` hook answers them.
Everything else goes to Flask untouched: other routes and query forms. So a per-request
hook added to the Flask app must be mirrored here (``tests/web/test_fast_paths.py`` lists
the hooks).
"""

from __future__ import annotations

import functools
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask
from marshmallow import ValidationError
from werkzeug.http import HTTP_STATUS_CODES

from bff.logs import new_request_id, set_request_id
from bff.tasks.record import Service
from bff.tasks.services import Services

from . import idempotency
from .access import record_request
from .clients import Identity, client_of
from .errors import ErrorAnswer, answer_for
from .intake import Caller, accept
from .refusals import Refusal
from .routes.generate import JSON_GENERATIONS, JsonGeneration, accepted_answer
from .status_reads import StatusReader
from .task_view import base_url, status_url
from .unsettled import UnsettledCreates

STATUS_ENDPOINT = "tasks.task_status"  # the Flask route's name: metrics count both paths as one
_STATUS_PATH = re.compile(r"/tasks/([A-Za-z0-9_-]{1,64})/status")
_SERVICES = frozenset(map(str, Service))

Answer = tuple[int, bytes, list[tuple[str, str]]]
# Given the request id, the client and its claims: an answer, or None to hand the request to Flask.
Handler = Callable[[str, str, Mapping[str, Any] | None], Answer | None]

# What a body Flask would refuse raises while it is read: Flask answers it (400 or 422).
_REFUSED_BODY = (UnicodeDecodeError, ValueError, RecursionError, ValidationError)


class FastPaths:
    def __init__(self, app: Flask, services: Services, identity: Identity, reader: StatusReader,
                 unsettled: UnsettledCreates, max_body_bytes: int):
        self._app = app  # its schemas' validators may read the app's settings
        self._flask_app = app.wsgi_app
        self._services = services
        self._identity = identity
        self._reader = reader
        self._unsettled = unsettled
        self._max_body_bytes = max_body_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        served = self._served(environ)
        if served is None:
            return self._flask_app(environ, start_response)
        endpoint, handle = served
        started = time.monotonic()
        request_id = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        set_request_id(request_id)
        try:
            answer = self._answer(environ, endpoint, handle, request_id)
            if answer is not None:
                status, body, headers = answer
                start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", [
                    ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    *headers, ("X-Request-ID", request_id)])
                record_request(self._services.metrics, endpoint, environ["REQUEST_METHOD"], environ["PATH_INFO"],
                               status, started)
                return [body]
        finally:
            set_request_id(None)
        return self._flask_app(environ, start_response)

    def _answer(self, environ: dict, endpoint: str, handle: Handler, request_id: str) -> Answer | None:
        try:
            client, claims = client_of(self._identity, endpoint, _header_reader(environ), environ.get("REMOTE_ADDR"))
        except Refusal as refusal:
            return _error(answer_for(refusal))  # before anything is read or counted, as in Flask
        return handle(request_id, client, claims)

    def _served(self, environ: dict) -> tuple[str, Handler] | None:
        """The endpoint and the handler of a request this layer serves."""
        method = environ.get("REQUEST_METHOD")
        if method == "GET":
            plain = _plain_status_read(environ)
            if plain is not None:
                return STATUS_ENDPOINT, lambda _, client, __: self._status(environ, client, *plain)
        elif method == "POST":
            route = JSON_GENERATIONS.get(environ.get("PATH_INFO", ""))
            if route is not None and _readable_json_body(environ, self._max_body_bytes):
                return route.endpoint, functools.partial(self._generation, environ, route)
        return None

    def _status(self, environ: dict, client: str, task_id: str, service: str) -> Answer:
        return _guarded(lambda: (200, self._reader.read(self._services.settings, client, task_id, service)
                                 .json(base_url(environ)).encode(), []))

    def _generation(self, environ: dict, route: JsonGeneration, request_id: str, client: str,
                    claims: Mapping[str, Any] | None) -> Answer | None:
        with self._app.app_context():
            args = _loaded(environ, route)
        if args is None:
            return None
        caller = Caller(client=client, request_id=request_id, endpoint=route.endpoint,
                        idempotency_key=_header_reader(environ)(idempotency.HEADER, None), claims=claims)

        def accepted() -> Answer:
            answer = accept(self._services, caller, service=route.service, kind=route.kind, args=args,
                            status_url=functools.partial(status_url, environ=environ), unsettled=self._unsettled,
                            counted_in=route.counted_in)
            status, headers = accepted_answer(answer)
            return status, _jsonified(answer.body), list(headers.items())

        return _guarded(accepted)


def _guarded(answer: Callable[[], Answer]) -> Answer:
    """``answer()``, or the error answer Flask's handlers give for what it raised."""
    try:
        return answer()
    except Exception as error:  # noqa: BLE001  (answer_for answers any of them, a 500 logged)
        return _error(answer_for(error))


def _error(answer: ErrorAnswer) -> Answer:
    return answer.status, _jsonified(answer.body), list(answer.headers.items())


def _plain_status_read(environ: dict) -> tuple[str, str] | None:
    """(task id, service) of a status read in its plain form."""
    path = _STATUS_PATH.fullmatch(environ.get("PATH_INFO", ""))
    name, _, service = environ.get("QUERY_STRING", "").partition("=")
    return (path.group(1), service) if path and name == "service" and service in _SERVICES else None


def _readable_json_body(environ: dict, max_bytes: int) -> bool:
    """Whether the body is JSON this layer may read whole: its length given, within the limit."""
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    length = environ.get("CONTENT_LENGTH", "")
    return mimetype == "application/json" and length.isascii() and length.isdigit() and int(length) <= max_bytes


def _loaded(environ: dict, route: JsonGeneration) -> dict | None:
    """The request's arguments as the route's schema loads them (webargs' reading of a JSON
    body: UTF-8, then JSON); None for a body it refuses, which is put back for Flask."""
    length = int(environ["CONTENT_LENGTH"])
    body = environ["wsgi.input"].read(length)
    try:
        if len(body) == length:
            return route.schema.load(json.loads(body.decode("utf-8")))
    except _REFUSED_BODY:
        pass
    environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again and answers its way
    return None


def _header_reader(environ: dict) -> Callable[[str, str | None], str | None]:
    def header(name: str, default: str | None) -> str | None:
        return environ.get("HTTP_" + name.upper().replace("-", "_"), default)

    return header


def _jsonified(body: dict) -> bytes:
    """As Flask's jsonify writes it: keys sorted, compact, a final newline."""
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()
