"""What a client sees of a task, rendered when the task changes rather than on every read.

The store writes a task's *view* next to its record, in the same transaction, every time
the record is written (``TaskStore``); the status route serves it with one Redis round
trip (``bff.web.status_reads``). The record stays the one source of truth: the view is
a function of it, and a missing view is rendered again from the record.

A view is a Redis hash:
- ``client``, ``service``: who may read it, under which ``?service=``;
- ``body``: the status body as JSON text in which every link to the BFF starts with
  ``BASE_MARK`` where its scheme and host go (they come from each request);
- ``waiting``: the capacity queue the task waits in, when it does (its position is read
  per request, as it changes without the task changing);
- ``lists_conversions``: present on a completed model (its conversions change without it
  changing: each is read from its own view per request);
- ``conversion``, ``created_at``: on a conversion task, the entry its model lists.

``json.dumps`` escapes every control character inside strings, so the ``BASE_MARK``
byte (NUL) can only be one this module put there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from .record import COMPLETED, IMAGES, MODEL, PREVIEW, Kind, Task

BASE_MARK = "\x00"

# The BFF's own links to a task, below the scheme and host: the routes in
# bff.web.routes.tasks serve these paths (a test holds them to url_for).
TASKS_PATH = "/tasks"


def status_path(task: Task) -> str:
    return f"{TASKS_PATH}/{task.id}/status?service={task.service}"


def result_paths(task: Task) -> list[str]:
    """Links to every result of a completed task, in order: its images, or its model."""
    if task.status != COMPLETED:
        return []
    if IMAGES in task.outputs:
        return [f"{TASKS_PATH}/{task.id}/images/{index}" for index in range(task.outputs[IMAGES])]
    if MODEL in task.outputs:
        return [f"{TASKS_PATH}/{task.id}/result"]
    return []


def preview_path(task: Task) -> str | None:
    return f"{TASKS_PATH}/{task.id}/preview" if task.status == COMPLETED and PREVIEW in task.outputs else None


class _Link(str):
    """A path to be rendered as an absolute link."""


def view_fields(task: Task, waiting_queue: str | None) -> dict[str, str]:
    """The view of ``task``; ``waiting_queue`` is the key of the capacity queue it waits
    in, or None."""
    links = [_Link(path) for path in result_paths(task)]
    preview = preview_path(task)
    body = {
        "task_id": task.id,
        "service": task.service,
        "status": task.status,
        "progress": task.progress,
        "result_url": links[0] if links else None,
        "result_urls": links or None,
        "preview_url": _Link(preview) if preview else None,
        "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        "created_at": iso8601(task.created_at),
        "updated_at": iso8601(task.updated_at),
    }
    if links and MODEL in task.outputs:
        body["result_format"] = task.outputs[MODEL]
    fields = {"client": task.client, "service": task.service, "body": _rendered(body)}
    if waiting_queue is not None:
        fields["waiting"] = waiting_queue
    if task.is_model and task.status == COMPLETED:  # only a completed model can have been converted
        fields["lists_conversions"] = "1"
    if task.kind == Kind.CONVERT_MODEL:
        fields["conversion"] = _rendered(_conversion_entry(task))
        fields["created_at"] = repr(task.created_at)
    return fields


def _conversion_entry(conversion: Task) -> dict:
    params = conversion.params  # .get: rendering must never stop a record from being written
    return {"task_id": conversion.id, "format": params.get("format"), "face_limit": params.get("face_limit"),
            "texture_size": params.get("texture_size"), "status": conversion.status,
            "status_url": _Link(status_path(conversion))}


def iso8601(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rendered(value) -> str:
    """JSON text, keys sorted as Flask sorts them, with each link as BASE_MARK + path."""
    if isinstance(value, _Link):
        return '"' + BASE_MARK + json.dumps(str(value))[1:]
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{_rendered(item)}" for key, item in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_rendered, value)) + "]"
    return json.dumps(value)


def with_extras(body: str, extras: dict[str, str]) -> str:
    """``body`` (a rendered JSON object) with more members, each given as rendered JSON."""
    if not extras:
        return body
    return body[:-1] + "".join(f",{json.dumps(key)}:{value}" for key, value in extras.items()) + "}"


def absolute(rendered: str, base_url: str) -> str:
    """Rendered JSON with every link made absolute under ``base_url`` (scheme, host and
    any script root, no final slash)."""
    return rendered.replace(BASE_MARK, json.dumps(base_url)[1:-1])


def conversion_list(entries: list[tuple[float, str]]) -> str:
    """The rendered ``conversions`` member from (created_at, rendered entry) pairs: oldest first."""
    return "[" + ",".join(entry for _, entry in sorted(entries)) + "]"
