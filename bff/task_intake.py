"""Accepting a generation request: record the task, then nudge a worker.

The request never calls a provider. The record is written before the message is sent,
so a worker never receives a message for a task that does not exist.
"""

from __future__ import annotations

from .logs import current_request_id
from .services import services
from .task import Task


def accept_task(*, service: str, kind: str, params: dict) -> Task:
    task = Task.new(service=service, kind=kind, params=params, request_id=current_request_id() or "")
    found = services()
    found.store.create(task)
    found.queue.submit(task.id, task.request_id)
    return task
