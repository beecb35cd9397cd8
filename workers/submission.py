"""Handing a task to its provider: exactly one provider call per task.

A worker first claims the submission in the task record (atomically); only the claimant
calls the provider, so a message delivered twice or two workers on one task cannot
create two provider tasks. What happens on failure is decided by the error's outcome
(see ``bff.providers.errors``): retry later, fail now, or fail as "outcome unknown"
without re-sending. The transitions themselves are ``bff.tasks.lifecycle``'s; a claim
whose worker died mid-call is settled by ``workers.reconcile``.
"""

from __future__ import annotations

import itertools
import logging
import time

from bff.logs import redact
from bff.providers.errors import RETRY, UNKNOWN, ProviderError
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.results.object_store import StorageUnavailable
from bff.tasks import lifecycle
from bff.tasks.capacity import bucket_for
from bff.tasks.error_codes import task_error
from bff.tasks.lifecycle import TaskChange
from bff.tasks.record import CLAIMED, UPLOAD, Service, Task
from bff.tasks.store import TaskStore

from .backoff import backoff_seconds
from .reconcile import CLAIM_TIMEOUT_SECONDS
from .runtime import WorkerRuntime
from .senders import SENDERS, ClaimLost
from .storing import discard_upload

log = logging.getLogger(__name__)

# Recording the outcome of a provider call must not be lost to a Redis outage: the call
# has been paid for. Pauses grow by this step up to the cap, which is short: once Redis is
# back, the record should land before a reconciliation cycle takes this worker for dead
# (its heartbeat lapsed in an outage over 15 s; Dramatiq's consumers come back after 3 s).
_RECORD_PAUSE_SECONDS = 0.25
_RECORD_PAUSE_CAP_SECONDS = 1.0


def submit(runtime: WorkerRuntime, task_id: str) -> float | None:
    """Submit the task if it is still waiting. Returns a delay in seconds when the
    submission should be tried again later, else None."""
    store, settings = runtime.store, runtime.settings
    task = store.get(task_id)
    if task is None:
        return None
    bucket = bucket_for(task.service, task.kind, settings)
    claimed = store.claim(task_id, bucket, lambda current, admitted: lifecycle.claim_or_wait(
        current, admitted=admitted, now=time.time(), deadline_seconds=settings.bff_task_deadline_seconds,
        worker=runtime.heartbeat.worker_id))
    if claimed is None or claimed.submission != CLAIMED:
        # Still waiting (another task took the capacity first): let the next poll cycle
        # dispatch it again rather than after the dispatch mark expires.
        store.clear_dispatched(task_id)
        discard_upload(runtime, claimed)  # it may have ended here, too late to be sent
        log.info("not sent now: task ended, already claimed, or waiting for provider capacity")
        return None
    retry_in = _send(runtime, claimed)
    if UPLOAD in claimed.object_keys:
        discard_upload(runtime, store.get(task_id))  # kept in the bucket until the task ends
    return retry_in


def _send(runtime: WorkerRuntime, claimed: Task) -> float | None:
    store = runtime.store
    try:
        finish = SENDERS[claimed.service](runtime, claimed)
    except ClaimLost:
        log.warning("this worker stalled and lost its claim; another worker sends the task")
        return None
    except ProviderError as error:
        return _handle_failure(runtime, claimed, error)
    except StorageUnavailable as error:
        # Reading the input image from the bucket failed: nothing was sent, so it costs nothing.
        log.warning("the input image could not be read from storage; sending later", extra={"error": error.detail})
        return _retry_later(runtime, claimed, rate_limited=False)
    except Exception:
        log.exception("submission crashed")
        store.update(claimed.id, lambda current: lifecycle.fail(current, claimed, task_error("internal_error")))
        return None
    _record_outcome(store, claimed, finish)
    return None


def _record_outcome(store: TaskStore, claimed: Task, finish: TaskChange) -> None:
    """Record what the provider answered, trying for as long as the claim holds: until
    then reconciliation leaves the task to this worker, and after it the task fails as
    ``provider_outcome_unknown`` (the answer, known here, would be lost)."""
    give_up_at = (claimed.claimed_at or time.time()) + CLAIM_TIMEOUT_SECONDS[Service(claimed.service)]
    for attempt in itertools.count(1):
        try:
            if store.update(claimed.id, finish) is None:
                # Or an earlier attempt here recorded it and only its reply was lost.
                log.warning("the task moved on while its provider call ran; this result is not recorded again")
            return
        except REDIS_UNAVAILABLE_ERRORS:
            pause = min(_RECORD_PAUSE_CAP_SECONDS, _RECORD_PAUSE_SECONDS * attempt)
            if time.time() + pause > give_up_at:
                log.error("could not record a finished provider call; reconciliation will settle the task")
                raise
            log.warning("could not record a finished provider call yet; trying again")
            time.sleep(pause)


def _retry_later(runtime: WorkerRuntime, claimed: Task, *, rate_limited: bool,
                 retry_after: float | None = None) -> float | None:
    """Send the task again after a backoff; only for failures that provably cost nothing."""
    delay = backoff_seconds(claimed.submit_tries + 1, retry_after)
    retried = runtime.store.update(claimed.id, lambda current: lifecycle.retry_later(
        current, claimed, rate_limited=rate_limited, next_attempt_at=time.time() + delay))
    return delay if retried else None


def _handle_failure(runtime: WorkerRuntime, claimed: Task, error: ProviderError) -> float | None:
    log.warning("submission failed", extra={"outcome": error.outcome, "error_code": error.error_code,
                                            "provider_code": error.provider_code, "provider_message": error.detail,
                                            "provider_request_id": error.request_id})
    # Waiting for provider capacity (a 429) is not a fault and does not count.
    faults = claimed.submit_faults + (0 if error.rate_limited else 1)
    if error.outcome == RETRY and faults < error.max_attempts:
        return _retry_later(runtime, claimed, rate_limited=error.rate_limited, retry_after=error.retry_after)
    detail = None if error.outcome == UNKNOWN else redact(error.detail, runtime.settings.secrets())
    runtime.store.update(claimed.id, lambda current: lifecycle.fail(
        current, claimed, task_error(error.error_code, detail),
        provider_error_code=error.provider_code, provider_request_id=error.request_id,
    ))
    return None
