"""Accepting a generation request: the one intake function.

``accept`` validates what the schemas cannot (the refine draft), applies the
Idempotency-Key, records the task and nudges a worker. The request never calls a
provider. The record is written before the message is sent, so a worker never receives
a message for a task that does not exist. Once the record is written the client gets
its 202, whatever happens to the message: reconciliation sends a task whose message
never left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.results.task_files import keep_upload
from bff.tasks.record import COMPLETED, Kind, Service, Task, Upload
from bff.tasks.services import Services

from . import idempotency
from .refusals import TaskNotFound, TaskNotReady

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who asks, and for which request: what intake needs from the HTTP layer."""

    client: str
    request_id: str
    endpoint: str
    idempotency_key: str | None


@dataclass(frozen=True)
class Accepted:
    body: dict
    location: str
    replayed: bool = False


def accept(
    services: Services, caller: Caller, *, service: Service, kind: Kind, args: dict,
    status_url: Callable[[Task], str], upload: Upload | None = None,
) -> Accepted:
    """Accept a task made of the request's ``args``, or replay the answer to an earlier
    request with the same Idempotency-Key."""
    claim, replay = idempotency.begin(services.redis, caller, args, upload)
    if replay is not None:
        return Accepted(replay["body"], replay["location"], replayed=True)
    try:
        params = _params(services, caller, kind, args)
        task = Task.new(service=service, kind=kind, params=params, request_id=caller.request_id,
                        client=caller.client)
        task, upload = keep_upload(services.objects, task, upload)  # with storage: in the bucket, not Redis
        accepted = Accepted(accepted_body(task, status_url(task)), status_url(task))
        remember = idempotency.answer_to_remember(claim, accepted.body, accepted.location) if claim else None
        services.store.create(task, upload, remember)
    except BaseException:
        if claim:
            idempotency.abandon(services.redis, claim)
        raise
    try:
        services.queue.submit(task.id, task.request_id)
    except REDIS_UNAVAILABLE_ERRORS:
        log.warning("could not enqueue the new task; reconciliation will send it", extra={"new_task": task.id})
    return accepted


def accepted_body(task: Task, status_url: str) -> dict:
    return {"task_id": task.id, "service": task.service, "status": task.status, "status_url": status_url}


def owned_task(services: Services, client: str, task_id: str) -> Task | None:
    """The task if it exists and belongs to ``client``; another client's task is treated
    as unknown, so ids reveal nothing across clients."""
    task = services.store.get(task_id)
    return task if task is not None and task.client == client else None


def _params(services: Services, caller: Caller, kind: Kind, args: dict) -> dict:
    if kind == Kind.REFINE_MODEL:
        return _refine_params(services, caller.client, args["draft_model_task_id"])
    return args


def _refine_params(services: Services, client: str, draft_task_id: str) -> dict:
    """The parameters of a refine task, or why the draft cannot be refined."""
    draft = owned_task(services, client, draft_task_id)
    if draft is None:
        raise TaskNotFound(f"No task with id {draft_task_id!r}.")
    if not draft.is_model:
        raise TaskNotReady("Only a 3D model task can be refined; this task is not one.")
    if draft.status != COMPLETED or not draft.provider_task_id:
        raise TaskNotReady(f"The draft is {draft.status}; only a completed model can be refined.")
    return {"draft_model_task_id": draft.id, "draft_provider_task_id": draft.provider_task_id}
