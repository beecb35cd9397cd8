"""The one provider call of each service, made once a worker holds a task's claim.

A sender makes the call and returns the change to record on the task (a
``bff.tasks.lifecycle`` transition guarded by the claim). Failures leave as
``ProviderError``; ``workers.submission`` decides what they mean for the task.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from bff.providers.openai_requests import openai_edit_request
from bff.providers.tripo_requests import tripo_create_request
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.tasks import lifecycle
from bff.tasks.error_codes import task_error
from bff.tasks.image_formats import sniff_format
from bff.tasks.lifecycle import TaskChange
from bff.tasks.record import IMAGE_FORMAT, IMAGES, PROCESSING, Service, Task
from bff.tasks.store import TaskStore

from .runtime import WorkerRuntime

log = logging.getLogger(__name__)

_KEEP_PAUSE_CAP_SECONDS = 30.0


class MissingUpload(Exception):
    """The task's uploaded image is gone (it should live as long as the task is open)."""


class ClaimLost(Exception):
    """Reconciliation gave the task to another worker while this one stalled: send nothing."""


def mark_sending(store: TaskStore, claimed: Task, *, status: str | None = None) -> None:
    """Record that the provider call is about to leave, if this worker still holds the claim."""
    if store.update(claimed.id, lambda current: lifecycle.mark_sending(current, claimed, time.time(),
                                                                        status=status)) is None:
        raise ClaimLost(claimed.id)


def send_to_tripo(runtime: WorkerRuntime, claimed: Task) -> TaskChange:
    """Create the task at Tripo; the poller follows it from there."""
    path, body = tripo_create_request(claimed, runtime.settings)
    mark_sending(runtime.store, claimed)
    provider_task_id = runtime.tripo.create_task(path, body)
    log.info("submitted", extra={"provider_task_id": provider_task_id})
    submitted_at = time.time()
    return lambda current: lifecycle.sent(current, claimed, provider_task_id=provider_task_id, now=submitted_at)


def send_to_openai(runtime: WorkerRuntime, claimed: Task) -> TaskChange:
    """Run the edit; its images come back in the answer, so the task completes here."""
    store = runtime.store
    upload = store.upload(claimed.id)
    if upload is None:
        raise MissingUpload(claimed.id)
    mark_sending(store, claimed, status=PROCESSING)
    images, request_id = runtime.openai.edit_image(openai_edit_request(claimed, upload, runtime.settings))
    log.info("edited", extra={"images": len(images), "provider_request_id": request_id})
    keep_until = lifecycle.deadline_at(claimed, runtime.settings.bff_task_deadline_seconds)
    if not _kept(lambda: store.save_images(claimed.id, images), keep_until):
        log.error("could not store paid images before the deadline", extra={"provider_request_id": request_id})
        error = task_error("result_not_kept", provider_request_id=request_id)
        return lambda current: lifecycle.fail(current, claimed, error, provider_request_id=request_id)
    outputs = {IMAGES: len(images), IMAGE_FORMAT: sniff_format(images[0]) or "PNG"}
    completed_at = time.time()
    return lambda current: lifecycle.completed_by_provider(
        current, claimed, outputs=outputs, provider_request_id=request_id, now=completed_at)


def _kept(write: Callable[[], None], until: float) -> bool:
    """Run ``write`` until it succeeds or ``until`` passes: a result that was paid for is
    not dropped because Redis refused it for a while (full, failing over, unreachable)."""
    for attempt in itertools.count(1):
        try:
            write()
            return True
        except REDIS_UNAVAILABLE_ERRORS as error:
            log.warning("could not store a paid result; trying again", extra={"error": type(error).__name__})
            pause = min(_KEEP_PAUSE_CAP_SECONDS, 0.5 * 2 ** (attempt - 1))
            if time.time() + pause > until:
                return False
            time.sleep(pause)
    raise AssertionError("unreachable")


SENDERS: dict[str, Callable[[WorkerRuntime, Task], TaskChange]] = {
    Service.TRIPO: send_to_tripo,
    Service.OPENAI: send_to_openai,
}
