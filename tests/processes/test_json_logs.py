"""Every line both roles write is JSON: gunicorn's own start and stop lines, its warning
about a malformed request, Dramatiq's boot and signal lines from its main process, and
the service's lines."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.processes.running import start, stop, wait_ready
from tests.redis_server import free_port

pytestmark = pytest.mark.slow


def json_lines(path: Path) -> list[dict]:
    parsed = []
    for line in filter(str.strip, path.read_text().splitlines()):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line of {path.name} is not JSON: {line}")
    return parsed


def has_line(lines: list[dict], logger: str, fragment: str) -> bool:
    return any(line["logger"] == logger and fragment in line["message"] for line in lines)


def test_every_line_of_both_roles_is_json(tmp_path):
    port = free_port()
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with web_log.open("w") as web_output, worker_log.open("w") as worker_output:
        web = start("web", {"PORT": str(port), "WEB_CONCURRENCY": "1"}, output=web_output)
        worker = start("worker", {"WORKER_PROCESSES": "1", "WORKER_THREADS": "1"}, output=worker_output)
        try:
            wait_ready(f"http://127.0.0.1:{port}", web)
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(b"NOT HTTP\r\n\r\n")  # gunicorn logs a warning about it
                connection.recv(4096)
            wait_until(lambda: "ready for action" in worker_log.read_text(), timeout=30)
        finally:
            stop(web, worker)

    web_lines, worker_lines = json_lines(web_log), json_lines(worker_log)
    assert has_line(web_lines, "gunicorn.error", "Starting gunicorn")
    assert has_line(web_lines, "gunicorn.error", "Invalid request from ip")
    assert has_line(web_lines, "bff.access", "request")
    assert has_line(web_lines, "gunicorn.error", "Shutting down")
    assert has_line(worker_lines, "dramatiq.MainProcess", "is booting up")
    assert has_line(worker_lines, "dramatiq.MainProcess", "Sending signal 'SIGTERM'")
    assert has_line(worker_lines, "dramatiq.WorkerProcess(0)", "Worker process is ready for action")
