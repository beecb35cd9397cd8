"""Handing a task to its provider: exactly one create call per task.

A worker first claims the submission in the task record (atomically); only the claimant
calls the provider, so a message delivered twice or two workers on one task cannot
create two provider tasks. What happens on failure is decided by the error's outcome
(see ``bff.providers.errors``): retry later, fail now, or fail as "outcome unknown"
without re-sending.
"""

from __future__ import annotations

import logging

from bff.error_codes import task_error
from bff.providers.errors import RETRY, UNKNOWN, ProviderError
from bff.task import CLAIMED, NOT_SUBMITTED, PENDING, Task

from . import runtime
from .backoff import backoff_seconds
from .senders import SENDERS

log = logging.getLogger(__name__)


def submit(task_id: str) -> float | None:
    """Submit the task if it is still waiting. Returns a delay in seconds when the
    submission should be tried again later, else None."""
    store = runtime.current().services.store
    claimed = store.update(task_id, _claim)
    if claimed is None:
        log.info("submission skipped: task unknown, ended, or already claimed")
        return None
    try:
        finish = SENDERS[claimed.service](claimed)
    except ProviderError as error:
        return _handle_failure(claimed, error)
    except Exception:
        log.exception("submission crashed")
        store.update(task_id, lambda task: task.failed(task_error("internal_error")))
        return None
    if store.update(task_id, finish) is None:
        log.warning("the task ended while its provider call ran; the provider's result is not used")
    return None


def _claim(task: Task) -> Task | None:
    return task.evolve(submission=CLAIMED) if task.submission == NOT_SUBMITTED else None


def _handle_failure(task: Task, error: ProviderError) -> float | None:
    store = runtime.current().services.store
    log.warning("submission failed", extra={"outcome": error.outcome, "error_code": error.error_code,
                                            "provider_code": error.provider_code,
                                            "provider_request_id": error.request_id})
    faults = task.submit_faults + (0 if error.rate_limited else 1)
    tries = task.submit_tries + 1
    # Waiting for provider capacity (a 429) is not a fault and does not count.
    if error.outcome == RETRY and faults < error.max_attempts:
        store.update(task.id, lambda current: current.evolve(
            status=PENDING, progress=0, submission=NOT_SUBMITTED, submit_faults=faults, submit_tries=tries,
        ))
        return backoff_seconds(tries, error.retry_after)
    detail = None if error.outcome == UNKNOWN else error.detail
    store.update(
        task.id,
        lambda current: current.failed(
            task_error(error.error_code, detail),
            provider_error_code=error.provider_code,
            provider_request_id=error.request_id,
        ),
    )
    return None
