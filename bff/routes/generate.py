"""POST /generate/*: accept a generation request and answer 202 with a task to follow."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..schemas import TaskAcceptedResponse, TextToModelRequest
from ..task_intake import accept_task
from ..task_view import accepted_body, status_url
from ..tripo_requests import TEXT_TO_MODEL

blp = Blueprint(
    "generate",
    __name__,
    url_prefix="/generate",
    description="Start a generation task. Each answers 202 with a task id; follow `status_url` until the "
    "task is completed or failed.",
)

_ACCEPTED_HEADERS = {"Location": {"description": "The task's status URL.", "schema": {"type": "string"}}}


def _accepted(service: str, kind: str, params: dict):
    task = accept_task(service=service, kind=kind, params=params)
    return accepted_body(task), 202, {"Location": status_url(task)}


@blp.route("/text-to-model", methods=["POST"])
@blp.arguments(TextToModelRequest, example={"prompt": "a friendly dragon sitting on a treasure chest", "style": "cartoon", "texture": True})
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def text_to_model(args: dict):
    """Text to 3D model (Tripo)

    Generates a 3D model (GLB) from a text prompt. `style` rewrites the prompt (see
    GET /styles); `texture: false` gives a cheaper untextured draft.
    """
    return _accepted("tripo", TEXT_TO_MODEL, args)
