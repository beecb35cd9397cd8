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

from bff.settings import EMBEDDED_REDIS_URL

CONNECT_TIMEOUT_SECONDS = 0.5
SOCKET_TIMEOUT_SECONDS = 0.5
RETRIES = 1
# With a cap on connections, how long a command waits for one to come free before it fails
# as "Redis is unavailable" (a request's 503): short, like the timeouts above.
POOL_WAIT_SECONDS = 0.5

# What counts as "Redis is unavailable for now" (a request answers 503): no connection,
# no answer in time, a replica during failover, or a full server.
REDIS_UNAVAILABLE_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
)


def connection_options() -> dict:
    """Options for every ``redis.Redis`` this service opens.

    No ``health_check_interval``: its PING on every new connection, with its own retry,
    doubled the time a command takes to fail against a hung Redis (past the 2 s
    promise), and the retry above already replaces a connection that went stale."""
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), RETRIES),
    }


def build_redis(url: str, *, verify_tls: bool = True, max_connections: int | None = None) -> redis.Redis:
    """A client; with ``max_connections``, one that never opens more connections than that
    (a command beyond them waits up to ``POOL_WAIT_SECONDS``, then raises ConnectionError)."""
    if url == EMBEDDED_REDIS_URL:
        import fakeredis

        return fakeredis.FakeRedis(server=_embedded_server())
    options = connection_options()
    if url.startswith("rediss://") and not verify_tls:
        # Heroku Redis serves TLS with a self-signed certificate (REDIS_TLS_VERIFY=false).
        options["ssl_cert_reqs"] = None
    if max_connections is None:
        return redis.Redis.from_url(url, **options)
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS,
                                                 **options)
    return redis.Redis(connection_pool=pool)


@functools.cache
def _embedded_server():
    """One in-process server shared by every client of this process (web, workers, poller)."""
    import fakeredis

    return fakeredis.FakeServer()
