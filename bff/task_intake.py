"""Accepting a generation request: record the task, then nudge a worker.

The request never calls a provider. The record is written before the message is sent,
so a worker never receives a message for a task that does not exist. Once the record
is written the client gets its 202, whatever happens to the message: reconciliation
sends a task whose message never left.
"""

from __future__ import annotations

import logging

from flask_smorest import abort

from . import idempotency
from .clients import current_client
from .logs import current_request_id
from .redis_client import REDIS_UNAVAILABLE_ERRORS
from .services import services
from .task import COMPLETED, Task, Upload
from .tripo_requests import MODEL_KINDS

log = logging.getLogger(__name__)


def accept_task(
    *, service: str, kind: str, params: dict, upload: Upload | None = None,
    idempotency_claim: idempotency.Claim | None = None,
) -> Task:
    task = Task.new(service=service, kind=kind, params=params, request_id=current_request_id() or "",
                    client=current_client())
    app_services = services()
    remember = idempotency.answer_to_remember(idempotency_claim, task) if idempotency_claim else None
    app_services.store.create(task, upload, remember)
    try:
        app_services.queue.submit(task.id, task.request_id)
    except REDIS_UNAVAILABLE_ERRORS:
        log.warning("could not enqueue the new task; reconciliation will send it", extra={"new_task": task.id})
    return task


def refine_params(draft_task_id: str) -> dict:
    """The parameters of a refine task, or a 404/409 saying why the draft cannot be refined."""
    draft = owned_task(draft_task_id)
    if draft is None:
        abort(404, message=f"No task with id {draft_task_id!r}.")
    if draft.service != "tripo" or draft.kind not in MODEL_KINDS:
        abort(409, message="Only a 3D model task can be refined; this task is not one.")
    if draft.status != COMPLETED or not draft.provider_task_id:
        abort(409, message=f"The draft is {draft.status}; only a completed model can be refined.")
    return {"draft_model_task_id": draft.id, "draft_provider_task_id": draft.provider_task_id}


def owned_task(task_id: str) -> Task | None:
    """The task if it exists and belongs to the calling client; another client's task
    is treated as unknown (404), so ids reveal nothing across clients."""
    task = services().store.get(task_id)
    return task if task is not None and task.client == current_client() else None
