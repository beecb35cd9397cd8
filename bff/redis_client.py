"""One way to build Redis clients, shared by the task store, the Dramatiq broker and the
poller lease.

redis-py 8 defaults to 5 s timeouts and ten retries, so one call can stall for most of a
minute during an outage. The BFF promises a 503 within two seconds instead, so every
client gets short timeouts and a single quick retry.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

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
    return redis.Redis.from_url(url, **connection_options())
