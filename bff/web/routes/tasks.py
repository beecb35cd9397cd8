"""GET /tasks/{task_id}/...: a task's status and its results, served from Redis (with object
storage configured, results are 302s to links signed for the bucket)."""

from __future__ import annotations

import base64
import json

from flask import Response, g, redirect
from flask_smorest import Blueprint

from bff.results.task_files import image_content_type, load_images, signed_link
from bff.tasks.image_formats import CONTENT_TYPES
from bff.tasks.record import COMPLETED, IMAGES, MODEL, PREVIEW, Service, Task
from bff.tasks.services import Services

from ..errors import RETRY_AFTER_SECONDS
from ..intake import owned_task
from ..output_links import fresh_output_url, signed_links
from ..rate_limits import status_requests
from ..refusals import TaskNotFound, TaskNotReady, Unavailable
from ..schemas import StatusQuery, TaskStatusResponse
from ..services import services
from ..status_reads import status_reader
from ..task_view import base_url
from .docs import error_responses

blp = Blueprint("tasks", __name__, url_prefix="/tasks", description="Follow a task and fetch its results.")

_REDIRECT = {
    "description": "Redirect to the file in the service's storage or at the provider (a short-lived signed URL).",
    "headers": {"Location": {"description": "The file's URL; follow it at once.", "schema": {"type": "string"}}},
}


def _task_or_404(app_services: Services, task_id: str) -> Task:
    task = owned_task(app_services, g.client, task_id)
    if task is None:
        raise TaskNotFound(f"No task with id {task_id!r}.")
    return task


@blp.route("/<task_id>/status")
@blp.arguments(StatusQuery(), location="query", as_kwargs=True)  # one instance: not built per read
@blp.response(200, TaskStatusResponse)
@error_responses(blp, 401, 404, 422, 429)
def task_status(task_id: str, service: str, include: str | None):
    """Task status

    Served from the BFF's own snapshot, refreshed every few seconds by the workers.
    Poll it every 2..5 s until `status` is `completed` or `failed`.
    """
    app_services = services()
    # Counted against the status limit inside the read itself: one round trip in all.
    read = status_reader().read(app_services.settings, g.client, task_id, service)
    included = _included(app_services, task_id, include) if include else {}
    return Response(read.json(base_url(), included), mimetype="application/json")


def _included(app_services: Services, task_id: str, include: str) -> dict[str, str]:
    """What ``?include=`` adds to the status body (rendered JSON by name): made per read from
    the record, so these rarer reads cost a round trip or more beyond the plain one."""
    task = app_services.store.get(task_id)
    if task is None or task.status != COMPLETED:
        return {}
    if include == "b64_json" and IMAGES in task.outputs:
        images = load_images(app_services.objects, app_services.store, task)
        return {"b64_json": json.dumps([base64.b64encode(image).decode() for image in images])}
    if include == "signed_urls":
        return {name: json.dumps(value) for name, value in signed_links(app_services.objects, task).items()}
    return {}


def _redirect_to_output(task_id: str, which: str):
    app_services = services()
    task = _task_or_404(app_services, task_id)
    if task.status != COMPLETED:
        raise TaskNotReady(f"The task is {task.status}; its result exists once it is completed.")
    if which not in task.outputs:
        raise TaskNotFound(f"This task has no {which}.")
    url = signed_link(app_services.objects, task, which) or fresh_output_url(app_services, task, which)
    if url is None:
        raise Unavailable("Could not get a fresh link from the provider in time; retry shortly.",
                          retry_after=RETRY_AFTER_SECONDS)
    return redirect(url, code=302)


@blp.route("/<task_id>/result")
@blp.alt_response(302, success=True, **_REDIRECT)
@error_responses(blp, 401, 404, 409, 429, 503)
@status_requests
def task_result(task_id: str):
    """Download the model

    Redirects (302) to the model file (GLB) of a completed task. The link in the status
    body stays valid; the URL it redirects to lives only minutes, so follow it at once.
    """
    return _redirect_to_output(task_id, MODEL)


@blp.route("/<task_id>/preview")
@blp.alt_response(302, success=True, **_REDIRECT)
@error_responses(blp, 401, 404, 409, 429, 503)
@status_requests
def task_preview(task_id: str):
    """Download the preview image

    Redirects (302) to a preview render (PNG) of a completed model task.
    """
    return _redirect_to_output(task_id, PREVIEW)


@blp.route("/<task_id>/images/<int:index>")
@blp.doc(responses={"200": {
    "description": "The image, as its content type says.",
    "content": {content_type: {"schema": {"type": "string", "format": "binary"}}
                for content_type in CONTENT_TYPES.values()},
}})
@blp.alt_response(302, success=True, **_REDIRECT)
@error_responses(blp, 401, 404, 409, 429)
@status_requests
def task_image(task_id: str, index: int):
    """Download a concept image

    The image number `index` (from 0) of a completed image-to-image task.
    """
    app_services = services()
    task = _task_or_404(app_services, task_id)
    if task.service != Service.OPENAI:
        raise TaskNotFound("This task has no images.")
    if task.status != COMPLETED:
        raise TaskNotReady(f"The task is {task.status}; its images exist once it is completed.")
    count = task.outputs[IMAGES]
    if index >= count:
        raise TaskNotFound(f"This task has {count} images, numbered from 0.")
    link = signed_link(app_services.objects, task, IMAGES, index)
    if link is not None:
        return redirect(link, code=302)
    image = app_services.store.image(task.id, index)
    if image is None:
        raise TaskNotFound("This image is no longer kept.")
    return Response(image, content_type=image_content_type(task.outputs))