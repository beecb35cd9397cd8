"""What a client sees of a task: the status body, built from the record alone."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import url_for

from bff.tasks.record import COMPLETED, IMAGES, MODEL, PREVIEW, Task


def iso8601(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_url(task: Task) -> str:
    return url_for("tasks.task_status", task_id=task.id, service=task.service, _external=True)


def result_links(task: Task) -> list[str]:
    """BFF links to every result of a completed task, in order: its images, or its model."""
    if task.status != COMPLETED:
        return []
    if IMAGES in task.outputs:
        return [url_for("tasks.task_image", task_id=task.id, index=index, _external=True)
                for index in range(task.outputs[IMAGES])]
    if MODEL in task.outputs:
        return [url_for("tasks.task_result", task_id=task.id, _external=True)]
    return []


def status_body(task: Task, images_b64: list[str] | None = None, queue_position: int | None = None,
                conversions: list[Task] | None = None) -> dict:
    links = result_links(task)
    has_preview = task.status == COMPLETED and PREVIEW in task.outputs
    body = {
        "task_id": task.id,
        "service": task.service,
        "status": task.status,
        "progress": task.progress,
        "result_url": links[0] if links else None,
        "result_urls": links or None,
        "preview_url": url_for("tasks.task_preview", task_id=task.id, _external=True) if has_preview else None,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "created_at": iso8601(task.created_at),
        "updated_at": iso8601(task.updated_at),
    }
    if images_b64 is not None:
        body["b64_json"] = images_b64
    if queue_position is not None:
        body["queue_position"] = queue_position
    if links and MODEL in task.outputs:
        body["result_format"] = task.outputs[MODEL]
    if conversions is not None:
        body["conversions"] = [_conversion(conversion) for conversion in conversions]
    return body


def _conversion(conversion: Task) -> dict:
    params = conversion.params
    return {"task_id": conversion.id, "format": params["format"], "face_limit": params["face_limit"],
            "texture_size": params["texture_size"], "status": conversion.status,
            "status_url": status_url(conversion)}
