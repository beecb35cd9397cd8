"""The one provider call of each service, made once a worker holds a task's claim.

A sender makes the call and returns the change to record on the task (a
``bff.tasks.lifecycle`` transition guarded by the claim). Failures leave as
``ProviderError``; ``workers.submission`` decides what they mean for the task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bff.providers.openai_requests import openai_edit_request
from bff.providers.tripo_requests import tripo_create_request
from bff.results.task_files import load_upload
from bff.tasks import lifecycle
from bff.tasks.image_formats import sniff_format
from bff.tasks.lifecycle import TaskChange
from bff.tasks.record import IMAGE_FORMAT, IMAGES, PROCESSING, Service, Task
from bff.tasks.store import TaskStore

from .runtime import WorkerRuntime
from .storing import keep_paid_images

log = logging.getLogger(__name__)


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
    object storage, once they are stored)."""
    store = runtime.store
    upload = load_upload(runtime.objects, store, claimed)
    if upload is None:
        raise MissingUpload(claimed.id)
    mark_sending(store, claimed, status=PROCESSING)
    images, request_id = runtime.openai.edit_image(openai_edit_request(claimed, upload, runtime.settings))
    log.info("edited", extra={"images": len(images), "provider_request_id": request_id})
    outputs = {IMAGES: len(images), IMAGE_FORMAT: sniff_format(images[0]) or "PNG"}
    if runtime.objects is not None:
        return keep_paid_images(runtime, runtime.objects, claimed, images, outputs, request_id)
    store.save_images(claimed.id, images)
    completed_at = time.time()
    return lambda current: lifecycle.completed_by_provider(
        current, claimed, outputs=outputs, provider_request_id=request_id, now=completed_at)


SENDERS: dict[str, Callable[[WorkerRuntime, Task], TaskChange]] = {
    Service.TRIPO: send_to_tripo,
    Service.OPENAI: send_to_openai,
}
