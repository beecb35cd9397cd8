"""One poll cycle per interval, whatever the number of worker processes.

Dramatiq has no scheduler. Every worker process runs this small ticker thread; each
tick tries to take a Redis lease (``SET NX PX interval``) and only the winner enqueues
the poll message. So the poller needs no extra process, survives any worker restart,
and ticks once per interval across all workers.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import dramatiq
import redis

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

LEASE_KEY = "bff:poller:lease"
_CHECKS_PER_INTERVAL = 5


class PollScheduler(dramatiq.Middleware):
    def __init__(self, client: redis.Redis, interval_seconds: float, enqueue_poll: Callable[[], None]):
        self._redis = client
        self._interval = interval_seconds
        self._enqueue_poll = enqueue_poll
        self._stop = threading.Event()
        self._owner = uuid.uuid4().hex
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bff-poll-scheduler", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self._interval)

    def _run(self) -> None:
        # Nothing may end this loop but shutdown: without it no task is polled or timed out.
        while not self._stop.wait(self._interval / _CHECKS_PER_INTERVAL):
            try:
                self.tick()
            except REDIS_UNAVAILABLE_ERRORS as error:
                log.warning("poll scheduler cannot reach redis", extra={"error": type(error).__name__})
            except Exception:
                log.exception("poll scheduler tick failed; trying again next tick")

    def tick(self) -> bool:
        """Enqueue a poll cycle if this process wins the lease for the current interval."""
        won = self._redis.set(LEASE_KEY, self._owner, nx=True, px=max(1, int(self._interval * 1000)))
        if won:
            self._enqueue_poll()
        return bool(won)
