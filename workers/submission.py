"""Handing a task to its provider: exactly one provider call per task.

A worker first claims the submission in the task record (atomically); only the claimant
calls the provider, so a message delivered twice or two workers on one task cannot
create two provider tasks. What happens on failure is decided by the error's outcome
(see ``bff.providers.errors``): retry later, fail now, or fail as "outcome unknown"
without re-sending. A claim whose worker died mid-call is settled by
``workers.reconcile``.
"""

from __future__ import annotations

import logging
import time

from bff.error_codes import task_error
from bff.logs import redact
from bff.providers.errors import RETRY, UNKNOWN, ProviderError
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.capacity import bucket_for
from bff.task import CLAIMED, NOT_SUBMITTED, PENDING, WAITING, Task

from . import runtime
from .backoff import backoff_seconds
from .senders import SENDERS, ClaimLost, TaskChange

log = logging.getLogger(__name__)

# Recording the outcome of a provider call must not be lost to a short Redis blip: the
# call has been paid for.
_RECORD_ATTEMPTS = 6
_RECORD_PAUSE_SECONDS = 0.5


def submit(task_id: str) -> float | None:
    """Submit the task if it is still waiting. Returns a delay in seconds when the
    submission should be tried again later, else None."""
    worker_runtime = runtime.current()
    store, settings = worker_runtime.services.store, worker_runtime.settings
    task = store.get(task_id)
    if task is None:
        return None
    bucket = bucket_for(task.service, task.kind, settings)
    claimed = store.claim(task_id, bucket, _decide(settings.bff_task_deadline_seconds))
    if claimed is None or claimed.submission != CLAIMED:
        # Still waiting (another task took the capacity first): let the next poll cycle
        # dispatch it again rather than after the dispatch mark expires.
        store.clear_dispatched(task_id)
        log.info("not sent now: task ended, already claimed, or waiting for provider capacity")
        return None
    try:
        finish = SENDERS[claimed.service](claimed)
    except ClaimLost:
        log.warning("this worker stalled and lost its claim; another worker sends the task")
        return None
    except ProviderError as error:
        return _handle_failure(claimed, error)
    except Exception:
        log.exception("submission crashed")
        store.update(task_id, _as_claimant(claimed, lambda task: task.failed(task_error("internal_error"))))
        return None
    _record_outcome(claimed, finish)
    return None


def _as_claimant(claimed: Task, change: TaskChange) -> TaskChange:
    """``change``, applied only while the task is still in the attempt this worker claimed."""
    return lambda current: change(current) if current.same_attempt(claimed) else None


def _decide(deadline_seconds: float):
    """What a submit message does to the task: claim it, queue it for capacity, or fail
    it when its deadline passed before it could be sent."""

    def decide(task: Task, admitted: bool) -> Task | None:
        if task.submission not in (NOT_SUBMITTED, WAITING):
            return None
        now = time.time()
        if task.past_deadline(now, deadline_seconds):
            return task.failed(task_error("timeout"))  # too late to start paying for it
        if not admitted:
            return task.evolve(submission=WAITING) if task.submission != WAITING else None
        # Time spent queued for capacity does not count against the deadline.
        deadline_from = now if task.submission == WAITING else task.deadline_from
        return task.evolve(submission=CLAIMED, claimed_at=now, deadline_from=deadline_from)

    return decide



def _record_outcome(claimed: Task, finish: TaskChange) -> None:
    store = runtime.current().services.store
    for attempt in range(1, _RECORD_ATTEMPTS + 1):
        try:
            if store.update(claimed.id, _as_claimant(claimed, finish)) is None:
                log.warning("the task ended while its provider call ran; the provider's result is not used")
            return
        except REDIS_UNAVAILABLE_ERRORS:
            if attempt == _RECORD_ATTEMPTS:
                log.error("could not record a finished provider call; reconciliation will settle the task")
                raise
            time.sleep(_RECORD_PAUSE_SECONDS * attempt)


def _handle_failure(task: Task, error: ProviderError) -> float | None:
    store = runtime.current().services.store
    log.warning("submission failed", extra={"outcome": error.outcome, "error_code": error.error_code,
                                            "provider_code": error.provider_code, "provider_message": error.detail,
                                            "provider_request_id": error.request_id})
    # Waiting for provider capacity (a 429) is not a fault and does not count.
    faults = task.submit_faults + (0 if error.rate_limited else 1)
    tries = task.submit_tries + 1
    if error.outcome == RETRY and faults < error.max_attempts:
        delay = backoff_seconds(tries, error.retry_after)
        retried = store.update(task.id, _as_claimant(task, lambda current: current.evolve(
            status=PENDING, progress=0, submission=NOT_SUBMITTED, claimed_at=None, sending_at=None,
            submit_faults=faults, submit_tries=tries, next_attempt_at=time.time() + delay,
        )))
        return delay if retried else None
    secrets = runtime.current().settings.secrets()
    detail = None if error.outcome == UNKNOWN else redact(error.detail, secrets)
    store.update(task.id, _as_claimant(task, lambda current: current.failed(
        task_error(error.error_code, detail),
        provider_error_code=error.provider_code,
        provider_request_id=error.request_id,
    )))
    return None
