"""A worker process's heartbeat, so that its claims stop holding provider capacity soon
after it dies.

Every worker process writes ``bff:workers:{id}`` every ``INTERVAL_SECONDS`` (sooner after a
beat that failed) with a TTL of ``TTL_SECONDS``, and stamps its claims with that id.
Reconciliation settles a claim whose worker has no heartbeat at once, as it would after the
longest possible provider call: one that had not sent its call is sent again, one that had
is failed as ``provider_outcome_unknown`` (never re-sent); only the slot is freed sooner.
"""

from __future__ import annotations

import logging
import threading
import uuid

import dramatiq
import redis

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 3.0
# After a beat that failed, the next comes this soon: once Redis is back after an outage
# longer than the TTL, this worker must be seen alive again before a reconciliation cycle
# takes it for dead (and fails the calls it is still recording; Dramatiq's consumers come
# back after 3 s).
RETRY_SECONDS = 0.5
# Several missed beats (a Redis blip, a long GC pause) before a worker counts as gone.
TTL_SECONDS = 15


def heartbeat_key(worker_id: str) -> str:
    return f"bff:workers:{worker_id}"


class Heartbeat(dramatiq.Middleware):
    def __init__(self, client: redis.Redis):
        self._redis = client
        self._id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def worker_id(self) -> str | None:
        """The id to stamp claims with: None unless this process is beating (code run
        outside a worker, such as a test calling a step directly, claims anonymously)."""
        return self._id if self._thread is not None and self._thread.is_alive() else None

    def after_worker_boot(self, broker, worker) -> None:
        self._stop.clear()
        beating = self._beat(beating=True)  # before the first message: no claim goes out unbacked
        self._thread = threading.Thread(target=self._run, args=(beating,), name="bff-heartbeat", daemon=True)
        self._thread.start()

    def after_worker_shutdown(self, broker, worker) -> None:
        """Beat until the worker threads have drained (Dramatiq's ``before_worker_shutdown``
        comes before the drain: a beat stopped there would let this worker's calls in flight
        and storing leases be taken for a dead worker's). Then go at once."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=INTERVAL_SECONDS)
        try:
            self._redis.delete(heartbeat_key(self._id))
        except REDIS_UNAVAILABLE_ERRORS:
            pass  # it expires by itself

    def _run(self, beating: bool) -> None:
        while not self._stop.wait(INTERVAL_SECONDS if beating else RETRY_SECONDS):
            beating = self._beat(beating)

    def _beat(self, beating: bool) -> bool:
        """Write the heartbeat; whether it was written. ``beating``: whether the last one was
        (a failure is logged once per outage, not every retry)."""
        try:
            self._redis.set(heartbeat_key(self._id), "1", ex=TTL_SECONDS)
        except Exception as error:  # noqa: BLE001  (the thread must outlive any one failure)
            if beating:
                log.warning("heartbeat cannot be written; retrying", extra={"error": type(error).__name__})
            return False
        if not beating:
            log.info("heartbeat written again")
        return True


def live_workers(client: redis.Redis, worker_ids: set[str]) -> set[str]:
    """Those of ``worker_ids`` whose heartbeat is current, in one round trip."""
    ordered = sorted(worker_ids)
    beats = client.mget([heartbeat_key(worker_id) for worker_id in ordered]) if ordered else []
    return {worker_id for worker_id, beat in zip(ordered, beats, strict=True) if beat is not None}
