"""A web process opens at most BFF_REDIS_MAX_CONNECTIONS connections to Redis, however
many requests it serves at once (gevent: up to WEB_CONNECTIONS) and however slow Redis
is; a request that finds them all busy gets the usual 503 within 2 s instead of hanging.
The real web role, as one process, on its own Redis behind a proxy that slows every reply."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import redis
import requests

from tests.processes.running import start, stop, wait_ready
from tests.redis_proxy import LossyRedisProxy
from tests.redis_server import PrivateRedis, free_port

CAP = 3
REQUESTS = 12  # at once: four times the cap
REPLY_DELAY_SECONDS = 0.3  # a slow Redis, within the clients' 0.5 s socket timeout
ANSWER_LIMIT_SECONDS = 2.0


@pytest.fixture
def slow_redis() -> Iterator[tuple[PrivateRedis, LossyRedisProxy]]:
    server = PrivateRedis()
    server.start()
    proxy = LossyRedisProxy(server.port)
    try:
        yield server, proxy
    finally:
        proxy.close()
        server.remove()


@contextmanager
def connection_counts(port: int) -> Iterator[list[int]]:
    """Redis's own count of its clients (CLIENT LIST, less the one asking), sampled every
    10 ms in the background while the block runs: the counts so far."""
    client = redis.Redis(port=port, single_connection_client=True)
    own_id = client.client_id()
    counts: list[int] = []
    stopping = threading.Event()

    def sample() -> None:
        while not stopping.wait(0.01):
            counts.append(sum(1 for other in client.client_list() if int(other["id"]) != own_id))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield counts
    finally:
        stopping.set()
        sampler.join(timeout=5)
        client.close()


def status_read(base_url: str) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.get(f"{base_url}/tasks/unknown-task/status?service=tripo", timeout=30)
    return response.status_code, time.monotonic() - started


def test_a_slow_redis_gets_no_more_connections_than_the_cap_and_the_rest_get_503(slow_redis):
    server, proxy = slow_redis
    port = free_port()
    web = start("web", {"PORT": str(port), "WEB_CONCURRENCY": "1", "REDIS_URL": proxy.url,
                        "BFF_REDIS_MAX_CONNECTIONS": str(CAP), "BFF_STATUS_REQUESTS_PER_MINUTE": "1000"})
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, web)
        proxy.delay_replies(REPLY_DELAY_SECONDS)
        with connection_counts(server.port) as counts, ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(lambda _: status_read(base_url), range(REQUESTS)))
    finally:
        stop(web)

    assert 0 < max(counts) <= CAP
    statuses = [status for status, _ in answers]
    assert set(statuses) == {404, 503}, statuses  # some got through (unknown task), the rest were turned away
    assert all(seconds < ANSWER_LIMIT_SECONDS for status, seconds in answers if status == 503), answers
