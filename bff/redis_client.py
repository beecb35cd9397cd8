"""One way to build Redis clients, shared by the task store, the Dramatiq broker and the
poller lease. This is also the one place that picks the store: a real Redis server, or
(sandbox mode with no REDIS_URL) an embedded in-process one that needs no server.

redis-py 8 defaults to 5 s timeouts and ten retries, so one call can stall for most of a
minute during an outage. The BFF promises a 503 within two seconds instead, so every
client gets short timeouts and a single quick retry.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections import deque
from typing import Any

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
                                                 queue_class=FirstComeFirstServed, **options)
    return redis.Redis(connection_pool=pool)


class _Waiter:
    def __init__(self) -> None:
        self.handed = threading.Event()
        self.item: Any = None


class FirstComeFirstServed:
    """The free connections of a capped pool (its ``queue_class``), handed to waiting
    requests in the order they started waiting.

    redis-py's pool keeps them in a plain LifoQueue, where a connection put back goes to
    whichever caller takes the queue's lock next: under load a request just arriving beats
    one that has waited for a while, again and again. Measured under load with a cap of 5:
    a p99 ten times the floor's, and a few requests past the 0.5 s wait (a 503). Here a
    connection put back goes straight to the longest waiting request. Free connections are
    still taken last in, first out, so idle ones can time out and close. The pool uses
    ``get``, ``put_nowait`` and ``queue`` (the free ones: a connection, or None for one
    not opened yet, which the pool fills in up to ``maxsize`` until ``queue.Full``).
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: list[Any] = []
        self._waiters: deque[_Waiter] = deque()
        # threading's, which gevent's monkey-patching makes cooperative in the web role.
        self._mutex = threading.Lock()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self._mutex:
            if self.queue and not self._waiters:
                return self.queue.pop()
            if not block:
                raise queue.Empty
            waiter = _Waiter()
            self._waiters.append(waiter)
        try:
            if waiter.handed.wait(timeout):
                return waiter.item
        except BaseException:
            # Interrupted (a greenlet killed, a timeout around the request): a connection
            # handed to it meanwhile goes to the next in line, not with it.
            with self._mutex:
                self._withdraw(waiter)
            raise
        with self._mutex:
            if waiter.handed.is_set():  # handed over just as the wait ran out
                return waiter.item
            self._waiters.remove(waiter)
        raise queue.Empty

    def _withdraw(self, waiter: _Waiter) -> None:
        if waiter.handed.is_set():
            self._hand_on(waiter.item)
        else:
            self._waiters.remove(waiter)

    def put_nowait(self, item: Any) -> None:
        with self._mutex:
            if not self._waiters and len(self.queue) >= self.maxsize:
                raise queue.Full
            self._hand_on(item)

    def _hand_on(self, item: Any) -> None:
        """To the longest waiting request, else back among the free ones (holding the mutex)."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.item = item
            waiter.handed.set()
        else:
            self.queue.append(item)


@functools.cache
def _embedded_server():
    """One in-process server shared by every client of this process (web, workers, poller)."""
    import fakeredis

    return fakeredis.FakeServer()
