"""Accepting a generation request: record the task, then nudge a worker.

The request never calls a provider. The record is written before the message is sent,
so a worker never receives a message for a task that does not exist.
"""

from __future__ import annotations

from flask_smorest import abort

from .clients import current_client
from .logs import current_request_id
from .services import services
from .task import COMPLETED, Task, Upload
from .tripo_requests import MODEL_KINDS


def accept_task(*, service: str, kind: str, params: dict, upload: Upload | None = None) -> Task:
    task = Task.new(service=service, kind=kind, params=params, request_id=current_request_id() or "",
                    client=current_client())
    app_services = services()
    # An upload lives as long as its task can stay open; it is deleted when the task ends.
    app_services.store.create(task, upload, upload_ttl_seconds=app_services.settings.bff_task_deadline_seconds + 3600)
    app_services.queue.submit(task.id, task.request_id)
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
