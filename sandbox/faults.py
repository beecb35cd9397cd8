"""Misbehaviour on demand, and the request pipeline around it, shared by the provider
stand-ins.

A test arms a fault on a stand-in's controller (answer an error, close the connection
with no response, answer late) and the stand-in's next matching requests suffer it.
`Faults` holds the pending faults thread-safely. `Controls` is the base of each
stand-in's controller: its faults and the requests it received. `install_hooks` gives a
Flask stand-in its pipeline: record the request, act on faults, check the key, tag the
response with a request id, and answer errors in the provider's shape.
"""

import dataclasses
import socket
import threading
from collections.abc import Callable

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

DROP_BEFORE = "drop_before"
DROP_AFTER = "drop_after"
FAIL = "fail"
DELAY = "delay"


@dataclasses.dataclass
class _Fault:
    kind: str
    suffix: str
    remaining: int
    params: dict


class Faults:
    """The pending faults of one stand-in, each for requests whose path ends with a suffix."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._wake = threading.Event()

    def add_failure(self, path_suffix: str, times: int, **error) -> None:
        """Answer the next `times` matching requests with `error_class(**error)`, before
        any processing."""
        self._add(FAIL, path_suffix, times, error)

    def add_drop(self, path_suffix: str, after_processing: bool, times: int) -> None:
        """Close the connection of the next `times` matching requests with no response;
        with `after_processing` the request takes effect first (the ambiguous case)."""
        self._add(DROP_AFTER if after_processing else DROP_BEFORE, path_suffix, times, {})

    def add_delay(self, path_suffix: str, seconds: float, times: int) -> None:
        """Hold the response of the next `times` matching requests for `seconds`, after
        the request took effect. reset() cuts pending delays short."""
        self._add(DELAY, path_suffix, times, {"seconds": seconds})

    def take(self, kind: str, path: str) -> dict | None:
        """Consume one pending fault of `kind` matching `path`; its params, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and path.endswith(fault.suffix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault.params
        return None

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if reset() is called meanwhile."""
        with self._lock:
            wake = self._wake
        wake.wait(seconds)

    def reset(self) -> None:
        """Forget pending faults and wake every response being held."""
        with self._lock:
            self._faults = []
            self._wake.set()
            self._wake = threading.Event()

    def _add(self, kind: str, suffix: str, times: int, params: dict) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Fault(kind, suffix, times, params))


class Controls:
    """The base of a stand-in's controller: the requests received and the pending faults.
    Subclasses add their own state (extending reset()) and fault methods."""

    def __init__(self, api_key: str, clock: Callable[[], float]):
        self.api_key = api_key
        self.clock = clock
        self._lock = threading.Lock()
        self.faults = Faults()
        self.reset()

    @property
    def requests(self) -> list:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def record(self, entry) -> None:
        with self._lock:
            self._requests.append(entry)

    def reset(self) -> None:
        """Forget requests and pending faults; wake delayed responses."""
        with self._lock:
            self._requests = []
        self.faults.reset()


def install_hooks(app: Flask, controls: Controls, error_class: type, *, request_id_header: str,
                  new_request_id: Callable[[], str], recorded_request: Callable[[], object],
                  authenticate: Callable[[str], None]) -> None:
    """Give `app` the stand-in request pipeline.

    `error_class` is the provider's error: built with the keyword params of an armed
    failure, answered with its `response()`, and made from a werkzeug error (unknown
    path, wrong method) by its `from_http(error)`. `recorded_request()` describes the
    current request for the log; `authenticate(api_key)` raises an `error_class` when
    the request may not pass. During a request `g.request_id` holds its id (also sent in
    the `request_id_header` response header) and `g.recorded` its log entry.
    """

    @app.before_request
    def record():
        g.request_id = new_request_id()
        g.recorded = recorded_request()
        controls.record(g.recorded)

    # Flask runs before_request hooks in order: a faulted request is still recorded,
    # and a fault strikes whatever key was sent, as a provider's overloaded front end does.
    _install_fault_hooks(app, controls.faults, error_class)

    @app.before_request
    def check_key():
        authenticate(controls.api_key)

    @app.after_request
    def identify(response: Response) -> Response:
        response.headers[request_id_header] = g.request_id
        return response

    app.register_error_handler(error_class, lambda error: error.response())
    app.register_error_handler(HTTPException,
                               lambda error: error_class.from_http(error).response())


def _install_fault_hooks(app: Flask, faults: Faults, error_class: type) -> None:
    @app.before_request
    def inject_before_processing():
        if faults.take(DROP_BEFORE, request.path) is not None:
            return drop_connection()
        error = faults.take(FAIL, request.path)
        if error is not None:
            raise error_class(**error)
        return None

    @app.after_request
    def inject_after_processing(response: Response) -> Response:
        delay = faults.take(DELAY, request.path)
        if delay is not None:
            faults.wait(delay["seconds"])
        if faults.take(DROP_AFTER, request.path) is not None:
            drop_connection()
        return response


def drop_connection() -> Response:
    # Shutting the socket down (rather than raising) makes werkzeug's write of the
    # response fail with a broken pipe, which it treats as a dropped connection: the
    # client sees the connection close with no response at all.
    connection = request.environ.get("werkzeug.socket")
    if connection is None:
        raise RuntimeError("drop_next needs a real server (sandbox.server), not a test client")
    connection.shutdown(socket.SHUT_RDWR)
    return Response(status=204)
