"""What a client sees of a task: the status body, built from the record alone."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import url_for

from .task import COMPLETED, Task


def iso8601(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_url(task: Task) -> str:
    return url_for("tasks.task_status", task_id=task.id, service=task.service, _external=True)


def accepted_body(task: Task) -> dict:
    return {"task_id": task.id, "service": task.service, "status": task.status, "status_url": status_url(task)}


def status_body(task: Task) -> dict:
    completed = task.status == COMPLETED
    has_model = completed and "model_format" in task.outputs
    has_preview = completed and task.outputs.get("preview")
    return {
        "task_id": task.id,
        "service": task.service,
        "status": task.status,
        "progress": task.progress,
        "result_url": url_for("tasks.task_result", task_id=task.id, _external=True) if has_model else None,
        "preview_url": url_for("tasks.task_preview", task_id=task.id, _external=True) if has_preview else None,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "created_at": iso8601(task.created_at),
        "updated_at": iso8601(task.updated_at),
    }
