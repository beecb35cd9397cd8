"""gunicorn settings kept in code: its own log lines and its own error responses in the
BFF's formats, and a hook that flushes a worker's metrics as it exits.

gunicorn sets its logging up before it loads the app, so without this its start-up and
error lines would not be JSON. It also answers some requests itself, before the app is
reached (a malformed request, a request line or headers over its limits: 400, 414, 431),
with an HTML page; here they get the API's JSON error shape instead.
"""

from __future__ import annotations

import json
import logging
import socket

from gunicorn import glogging, util

from bff.web.services import services

logging.captureWarnings(True)  # a Python warning in gunicorn's master is a JSON line too

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "bff.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}


class AppLogger(glogging.Logger):
    """gunicorn's logger without its access line: the app writes its own (``bff.access``).
    gunicorn's line would be dropped by its level anyway, but only after gunicorn had built
    its fields on every request (it does whenever a logging config is given)."""

    def access(self, resp, req, environ, request_time) -> None:
        return None


logger_class = AppLogger


def worker_exit(server, worker) -> None:
    """Send this worker's last second of HTTP counts (buffered, see bff.metrics) before it goes."""
    app = getattr(worker, "wsgi", None)  # None when the app failed to load
    if app is not None:
        with app.app_context():
            services().metrics.close()


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Replaces ``gunicorn.util.write_error``, which every gunicorn worker calls for the
    errors it answers itself (tests/processes/test_server_errors.py holds it to that)."""
    body = json.dumps({"code": status_int, "status": reason, "message": mesg or reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = write_json_error
