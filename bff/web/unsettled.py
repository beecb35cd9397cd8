"""Creates whose outcome stayed unknown: settled in the background, never sent.

When the reply to a task's create is lost and Redis stays unreachable for the whole of
the request's budget, the request answers 503, yet the create may have run. Such a task
must not reach the provider: the client was told it failed. This thread keeps trying,
for a while after the answer, to settle each one: a task that was not recorded is made
void (a create arriving later writes nothing); one that was recorded is ended before any
worker sends it, and the Idempotency-Key answer stored with it is withdrawn, so a retry
with the same key makes the only task.

Reconciliation sends a recorded task whose message never left after
``workers.reconcile.NUDGE_AFTER_SECONDS`` (60 s); this gives up earlier, at
``SETTLE_FOR_SECONDS``. Only a Redis outage longer than that, with this web process
gone too, can let such a task be sent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

import redis

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.tasks import lifecycle
from bff.tasks.record import Task
from bff.tasks.store import TaskStore

from .idempotency import Claim

log = logging.getLogger(__name__)

SETTLE_FOR_SECONDS = 45
_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class _Unsettled:
    task: Task
    claim: Claim | None
    give_up_at: float


class UnsettledCreates:
    def __init__(self, client: redis.Redis, store: TaskStore):
        self._redis = client
        self._store = store
        self._queue: queue.Queue[_Unsettled] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def settle_later(self, task: Task, claim: Claim | None) -> None:
        self._queue.put(_Unsettled(task, claim, time.monotonic() + SETTLE_FOR_SECONDS))
        with self._lock:  # started lazily: the process may have forked since the app was built
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bff-unsettled-creates", daemon=True)
                self._thread.start()

    def settle(self, unsettled: _Unsettled) -> None:
        """One attempt: raises while Redis is unavailable."""
        task, claim = unsettled.task, unsettled.claim
        if self._store.resolve_create(task):
            ended = self._store.update(task.id, lambda current: lifecycle.withdraw(current, task))
            log.warning("a task answered 503 had been recorded; withdrawn before sending",
                        extra={"unsettled_task": task.id, "withdrawn": ended is not None})
        if claim is not None:
            _forget_answer(self._redis, claim, task.id)

    def _run(self) -> None:
        while True:
            unsettled = self._queue.get()
            while time.monotonic() < unsettled.give_up_at:
                try:
                    self.settle(unsettled)
                    break
                except REDIS_UNAVAILABLE_ERRORS:
                    time.sleep(_PAUSE_SECONDS)
            else:
                log.error("could not settle a task whose create outcome is unknown",
                          extra={"unsettled_task": unsettled.task.id})


def _forget_answer(client: redis.Redis, claim: Claim, task_id: str) -> None:
    """Withdraw what the Idempotency-Key holds for this request (its in-progress mark or
    the answer stored with the task), so a retry makes a new task."""
    raw = client.get(claim.redis_key)
    stored = json.loads(raw) if raw else None
    if stored is not None and stored.get("answer", {}).get("body", {}).get("task_id", task_id) == task_id:
        client.delete(claim.redis_key)
