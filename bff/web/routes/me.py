"""GET /me: the calling user's credits for today, and what each generation route costs."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema
from marshmallow.utils import missing

from bff.providers.tripo_requests import CONVERT_TARGETS, conversion_options
from bff.tasks import conversions
from bff.tasks.record import Kind, Service, Task

from ..rate_limits import status_requests
from ..schemas import (
    ImageToImageRequest,
    ImageToModelRequest,
    MeResponse,
    SketchToModelRequest,
    TextToModelRequest,
)
from ..services import services
from .docs import error_responses

blp = Blueprint("me", __name__, description="The calling user: credits left today, and what each request costs.")

_PLACEHOLDER = "-"  # a required value the price does not depend on


def _defaults(schema: type[Schema]) -> dict:
    """The options a request of ``schema`` gets when it leaves them out."""
    return {name: field.load_default for name, field in schema._declared_fields.items()
            if field.load_default is not missing}


def _route_tasks(client: str) -> dict[str, Task]:
    """Each generation route's task as it is recorded with the route's default options."""
    convert_format = next(iter(CONVERT_TARGETS))  # every format costs the same
    requests = {
        "text-to-model": (Service.TRIPO, Kind.TEXT_TO_MODEL,
                          {**_defaults(TextToModelRequest), "prompt": _PLACEHOLDER}),
        "sketch-to-model": (Service.TRIPO, Kind.SKETCH_TO_MODEL,
                            {**_defaults(SketchToModelRequest), "image_url": _PLACEHOLDER}),
        "image-to-model": (Service.TRIPO, Kind.IMAGE_TO_MODEL,
                           {**_defaults(ImageToModelRequest), "image_urls": [_PLACEHOLDER]}),
        "refine-model": (Service.TRIPO, Kind.REFINE_MODEL,
                         {"draft_model_task_id": _PLACEHOLDER, "draft_provider_task_id": _PLACEHOLDER}),
        "convert-model": (Service.TRIPO, Kind.CONVERT_MODEL, {
            conversions.SOURCE: _PLACEHOLDER, conversions.SOURCE_PROVIDER_TASK: _PLACEHOLDER, "format": convert_format,
            **conversion_options(convert_format, face_limit=None, texture_size=None)}),
        "image-to-image": (Service.OPENAI, Kind.IMAGE_TO_IMAGE,
                           {**_defaults(ImageToImageRequest), "prompt": _PLACEHOLDER}),
    }
    return {route: Task.new(service=service, kind=kind, params=params, request_id="", client=client)
            for route, (service, kind, params) in requests.items()}


@blp.route("/me")
@blp.response(200, MeResponse)
@error_responses(blp, 401, 429, 503)
@status_requests
def me():
    """My credits

    The calling user's credits for today (UTC): the allowance (null: unlimited), what is
    charged, what is reserved by tasks still running, and what remains; and the price
    of each generation route with its default options, to show "this costs N credits"
    before the user asks. A request whose price is more than `remaining` is refused with
    429 `credits_exhausted`.
    """
    credits = services().credits
    standing = credits.standing(g.client, g.get("claims"))
    prices = {route: credits.price(task) for route, task in _route_tasks(g.client).items()}
    return {**standing, "prices": prices}
