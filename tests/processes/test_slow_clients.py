"""Slow or stalled clients cannot starve the web role: while 20 connections trickle their
request (headers, or a declared body) a byte at a time, /healthz and a status read still
answer within a second. The real web role, with its default sizing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.conftest import wait_until

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 20
TRICKLE_INTERVAL_SECONDS = 0.1
MAX_TRICKLE_ROUNDS = 600  # a bound: 60 s at most, far longer than the test needs
LATENCY_LIMIT_SECONDS = 1.0

HEADERS_NEVER_FINISHED = b"GET /healthz HTTP/1.1\r\nHost: bff\r\nX-Slow: "
BODY_NEVER_FINISHED = (b"POST /generate/text-to-model HTTP/1.1\r\nHost: bff\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 100000\r\n\r\n" + b'{"prompt": "')


class Trickler:
    """Sends one more byte on every connection each interval, until stopped."""

    def __init__(self, connections: list[socket.socket]) -> None:
        self._connections = connections
        self._stopping = threading.Event()
        self.rounds = 0
        self.failure: OSError | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.rounds < MAX_TRICKLE_ROUNDS and not self._stopping.wait(TRICKLE_INTERVAL_SECONDS):
            try:
                for connection in self._connections:
                    connection.sendall(b"a")
            except OSError as error:  # the server dropped a slow client
                self.failure = error
                return
            self.rounds += 1

    def __enter__(self) -> Trickler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)


@contextmanager
def slow_clients(port: int, opening: bytes) -> Iterator[Trickler]:
    connections = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(SLOW_CLIENTS)]
    try:
        for connection in connections:
            connection.sendall(opening)
        with Trickler(connections) as trickler:
            yield trickler
    finally:
        for connection in connections:
            connection.close()


def latency(url: str) -> tuple[float, int]:
    started = time.monotonic()
    response = requests.get(url, timeout=5)
    return time.monotonic() - started, response.status_code


@pytest.mark.parametrize("opening", [HEADERS_NEVER_FINISHED, BODY_NEVER_FINISHED], ids=["headers", "body"])
def test_slow_clients_do_not_delay_health_or_status_reads(web_role, opening):
    with slow_clients(web_role.port, opening) as trickler:
        # Several rounds in: every slow connection has been accepted and is mid-request.
        wait_until(lambda: trickler.rounds >= 5)
        rounds_before = trickler.rounds
        for _ in range(3):
            for path, expected_status in [("/healthz", 200), ("/tasks/unknown-task/status?service=tripo", 404)]:
                seconds, status = latency(f"{web_role.base_url}{path}")
                assert status == expected_status, path
                assert seconds < LATENCY_LIMIT_SECONDS, f"{path}: {seconds:.2f} s behind {SLOW_CLIENTS} slow clients"
        # The slow clients were still connected and trickling after the reads.
        wait_until(lambda: trickler.rounds > rounds_before or trickler.failure)
        assert trickler.failure is None
