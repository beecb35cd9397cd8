"""The Dramatiq actors. Each is a thin, idempotent entry point: the task record in Redis
decides what to do, so a repeated or late message does no harm.

Dramatiq's own retries are off (``max_retries=0``): retrying a provider call is a
decision about money, made in ``workers.submission``.
"""

from __future__ import annotations

import logging
import time

import dramatiq
from redis.exceptions import LockError

from bff.logs import task_context
from bff.providers.errors import ProviderError
from bff.providers.tripo_status import snapshot_from_tripo
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.tasks.queue import (
    POLL_QUEUE,
    POLL_TASKS,
    REFRESH_OUTPUT_URLS,
    STORE_QUEUE,
    STORE_RESULTS,
    SUBMIT_QUEUE,
    SUBMIT_TASK,
)

from . import runtime
from .broker import broker, settings  # noqa: F401  (sets the broker before the actors bind to it)
from .polling import cache_output_urls, poll_cycle
from .storing import STORE_ATTEMPT_SECONDS, store_results
from .submission import submit

log = logging.getLogger(__name__)

POLL_LOCK_KEY = "bff:poller:running"
# Longer than any cycle (milliseconds now that a cycle reads only what is due), and short,
# because the lock outlives a cycle cut off mid-way (a worker killed, or Redis stopped and
# restarted from its AOF): polling waits that long before it resumes.
POLL_LOCK_SECONDS = 30


# A submission may keep a paid result for as long as the task's deadline allows (see
# workers.senders), so Dramatiq's default ten-minute limit is lifted to match.
_SUBMIT_TIME_LIMIT_MS = int((settings.bff_task_deadline_seconds + 300) * 1000)


@dramatiq.actor(actor_name=SUBMIT_TASK, queue_name=SUBMIT_QUEUE, max_retries=0, priority=10,
                time_limit=_SUBMIT_TIME_LIMIT_MS)
def submit_task(task_id: str, request_id: str) -> None:
    worker_runtime = runtime.current()
    with task_context(task_id, request_id):
        retry_in = submit(worker_runtime, task_id)
        if retry_in is not None:
            log.info("submission will be retried", extra={"delay_seconds": round(retry_in, 1)})
            worker_runtime.queue.submit_later(task_id, request_id, retry_in)


@dramatiq.actor(actor_name=POLL_TASKS, queue_name=POLL_QUEUE, max_retries=0, priority=0)
def poll_tasks(sent_at: float) -> None:
    worker_runtime = runtime.current()
    if time.time() - sent_at > 2 * worker_runtime.settings.bff_poll_interval_seconds:
        return  # waited behind busy workers; a newer poll message is on its way
    # A slow cycle must not overlap the next one: skip rather than pile up. The lock is
    # token-checked, so a cycle that outlives it cannot release the next cycle's lock.
    lock = worker_runtime.services.redis.lock(POLL_LOCK_KEY, timeout=POLL_LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        return
    try:
        poll_cycle(worker_runtime)
    finally:
        try:
            lock.release()
        except (LockError, *REDIS_UNAVAILABLE_ERRORS):
            pass  # expired or unreachable: it frees itself


@dramatiq.actor(actor_name=REFRESH_OUTPUT_URLS, queue_name=POLL_QUEUE, max_retries=0, priority=0)
def refresh_output_urls(task_id: str, request_id: str) -> None:
    worker_runtime = runtime.current()
    with task_context(task_id, request_id):
        task = worker_runtime.store.get(task_id)
        if task is None or not task.provider_task_id:
            return
        try:
            provider_task = worker_runtime.tripo.get_task(task.provider_task_id)
            cache_output_urls(worker_runtime, task_id, snapshot_from_tripo(provider_task))
        except ProviderError as error:
            log.warning("could not refresh output urls", extra={"error_code": error.error_code})


# Its time limit is the storing lease's: downloads are bounded well within it.
@dramatiq.actor(actor_name=STORE_RESULTS, queue_name=STORE_QUEUE, max_retries=0, priority=5,
                time_limit=int(STORE_ATTEMPT_SECONDS * 1000))
def store_task_results(task_id: str, request_id: str) -> None:
    worker_runtime = runtime.current()
    with task_context(task_id, request_id):
        store_results(worker_runtime, task_id)
