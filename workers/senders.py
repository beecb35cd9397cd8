"""The one provider call of each service, made once a worker holds a task's claim.

A sender makes the call and returns the change to record on the task. Failures leave
as ``ProviderError``; ``workers.submission`` decides what they mean for the task.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from bff.openai_requests import openai_edit_request
from bff.task import COMPLETED, PROCESSING, SUBMITTED, Task
from bff.tripo_requests import tripo_create_request
from bff.uploads import sniff_format

from . import runtime

log = logging.getLogger(__name__)

TaskChange = Callable[[Task], Task]


class MissingUpload(Exception):
    """The task's uploaded image is gone (it should live as long as the task is open)."""


class ClaimLost(Exception):
    """Reconciliation gave the task to another worker while this one stalled: send nothing."""


def mark_sending(task: Task, **changes) -> None:
    """Record that the provider call is about to leave, if this worker still holds the
    claim. A worker that dies before this point sent nothing (the task can be sent again);
    after it, the call may have been billed (see workers.reconcile)."""
    store = runtime.current().services.store

    def sending(current: Task) -> Task | None:
        if not current.same_attempt(task) or current.sending_at is not None:
            return None
        return current.evolve(sending_at=time.time(), **changes)

    if store.update(task.id, sending) is None:
        raise ClaimLost(task.id)


def send_to_tripo(task: Task) -> TaskChange:
    """Create the task at Tripo; the poller follows it from there."""
    worker_runtime = runtime.current()
    path, body = tripo_create_request(task, worker_runtime.settings)
    mark_sending(task)
    provider_task_id = worker_runtime.tripo.create_task(path, body)
    log.info("submitted", extra={"provider_task_id": provider_task_id})
    submitted_at = time.time()
    return lambda current: current.evolve(
        submission=SUBMITTED, provider_task_id=provider_task_id, submitted_at=submitted_at
    )


def send_to_openai(task: Task) -> TaskChange:
    """Run the edit; its images come back in the answer, so the task completes here."""
    worker_runtime = runtime.current()
    store = worker_runtime.services.store
    upload = store.upload(task.id)
    if upload is None:
        raise MissingUpload(task.id)
    mark_sending(task, status=PROCESSING)
    images, request_id = worker_runtime.openai.edit_image(openai_edit_request(task, upload, worker_runtime.settings))
    store.save_images(task.id, images)
    log.info("edited", extra={"images": len(images), "provider_request_id": request_id})
    outputs = {"images": len(images), "image_format": sniff_format(images[0]) or "PNG"}
    submitted_at = time.time()
    return lambda current: current.evolve(
        status=COMPLETED, progress=100, submission=SUBMITTED, submitted_at=submitted_at,
        provider_request_id=request_id, outputs=outputs,
    )


SENDERS: dict[str, Callable[[Task], TaskChange]] = {"tripo": send_to_tripo, "openai": send_to_openai}
