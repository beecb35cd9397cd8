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
from bff.results.task_files import load_upload
from bff.tasks import lifecycle
from bff.tasks.error_codes import task_error
from bff.tasks.image_formats import sniff_format
from bff.tasks.lifecycle import TaskChange
from bff.tasks.record import IMAGE_FORMAT, IMAGES, PROCESSING, Service, Task
from bff.tasks.store import TaskStore

from .backoff import backoff_seconds
from .runtime import WorkerRuntime
from .storing import put_paid_images

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
    """Run the edit; its images come back in the answer, so the task completes here (with
    object storage, once they are in the bucket: at once, or later from Redis)."""
    store = runtime.store
    upload = load_upload(runtime.objects, store, claimed)
    if upload is None:
        raise MissingUpload(claimed.id)
    mark_sending(store, claimed, status=PROCESSING)
    images, request_id = runtime.openai.edit_image(openai_edit_request(claimed, upload, runtime.settings))
    log.info("edited", extra={"images": len(images), "provider_request_id": request_id})
    outputs = {IMAGES: len(images), IMAGE_FORMAT: sniff_format(images[0]) or "PNG"}
    now = time.time()
    if runtime.objects is None:
        return _kept_in_redis(runtime, claimed, images, request_id, lambda current: lifecycle.completed_by_provider(
            current, claimed, outputs=outputs, provider_request_id=request_id, now=now))
    keys, stored = put_paid_images(runtime.objects, claimed.id, images, outputs)
    if stored:
        return lambda current: lifecycle.completed_by_provider(
            current, claimed, outputs=outputs, provider_request_id=request_id, now=now, object_keys=keys)
    # The storage cannot take them now: they wait in Redis, and a worker stores them later.
    delay = backoff_seconds(1)
    runtime.queue.store_results(claimed.id, claimed.request_id, delay_seconds=delay)
    return _kept_in_redis(runtime, claimed, images, request_id, lambda current: lifecycle.storing_after_call(
        current, claimed, outputs=outputs, provider_request_id=request_id, now=now, object_keys=keys,
        next_attempt_at=now + delay))


def _kept_in_redis(runtime: WorkerRuntime, claimed: Task, images: list[bytes], request_id: str | None,
                   then: TaskChange) -> TaskChange:
    """Keep paid images in Redis (trying until the task's deadline), then record ``then``;
    or fail the task as a paid result not kept."""
    keep_until = lifecycle.deadline_at(claimed, runtime.settings.bff_task_deadline_seconds)
    if _kept(lambda: runtime.store.save_images(claimed.id, images), keep_until):
        return then
    log.error("could not store paid images before the deadline", extra={"provider_request_id": request_id})
    error = task_error("result_not_kept", provider_request_id=request_id)
    return lambda current: lifecycle.fail(current, claimed, error, provider_request_id=request_id)


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
