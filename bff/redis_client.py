"""One way to build Redis clients, shared by the task store, the Dramatiq broker and the
poller lease. This is also the one place that picks the store: a real Redis server, or
(sandbox mode with no REDIS_URL) an embedded in-process one that needs no server.

redis-py 8 defaults to 5 s timeouts and ten retries, so one call can stall for most of a
minute during an outage. The BFF promises a 503 within two seconds instead, so every
client gets short timeouts and a single quick retry.
"""

from __future__ import annotations

import functools

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from .settings import EMBEDDED_REDIS_URL

CONNECT_TIMEOUT_SECONDS = 0.5
SOCKET_TIMEOUT_SECONDS = 1.0
RETRIES = 1

# What a request handler treats as "Redis is unavailable" (-> 503).
REDIS_UNAVAILABLE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def connection_options() -> dict:
    """Options for ``redis.Redis``; also handed to anything else that opens connections."""
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), RETRIES),
        "health_check_interval": 30,
    }


def build_redis(url: str) -> redis.Redis:
    if url == EMBEDDED_REDIS_URL:
        import fakeredis

        return fakeredis.FakeRedis(server=_embedded_server())
    return redis.Redis.from_url(url, **connection_options())


@functools.cache
def _embedded_server():
    """One in-process server shared by every client of this process (web, workers, poller)."""
    import fakeredis

    return fakeredis.FakeServer()
