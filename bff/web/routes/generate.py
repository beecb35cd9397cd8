"""POST /generate/*: accept a generation request and answer 202 with a task to follow."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, request
from flask_smorest import abort
from marshmallow import Schema
from werkzeug.datastructures import FileStorage

from bff.tasks.record import Kind, Service, Upload

from .. import idempotency
from ..intake import Accepted, Caller, accept
from ..rate_limits import OPENAI, TRIPO_OTHER, TRIPO_REFINE, Family, counted
from ..schemas import (
    ConvertModelRequest,
    ImageToImageRequest,
    ImageToModelRequest,
    RefineModelRequest,
    SketchToModelRequest,
    TaskAcceptedResponse,
    TextToModelRequest,
)
from ..services import services, unsettled_creates
from ..task_view import status_url
from ..uploads import UploadRejected, UploadTooLarge, check_image_off_loop
from .docs import error_responses
from .multipart import MULTIPART, Blueprint

blp = Blueprint(
    "generate",
    __name__,
    url_prefix="/generate",
    description="Start a generation task. Each answers 202 with a task id; follow `status_url` until the "
    "task is completed or failed.",
)

# Room for the form fields and multipart framing around the image itself.
_MULTIPART_OVERHEAD_BYTES = 256 * 1024

_ACCEPTED_HEADERS = {"Location": {"description": "The task's status URL.", "schema": {"type": "string"}}}


@dataclass(frozen=True)
class JsonGeneration:
    """A generation route whose request is one JSON body and that records its task without
    reading anything first: what it makes, and the limit its requests count against (in
    the script that records the task). The Flask route and the fast path
    (``bff.web.fast_paths``) both serve it from this. Refine and convert read the model
    first, so they count each request up front, as the upload route does: a request about
    a model that is not there (or not ready) counts too."""

    path: str
    endpoint: str  # Flask's name for the route
    # An instance, not the class: webargs would build a new schema for every request.
    schema: Schema
    service: Service
    kind: Kind
    counted_in: Family


TEXT_TO_MODEL = JsonGeneration("/generate/text-to-model", "generate.text_to_model", TextToModelRequest(),
                               Service.TRIPO, Kind.TEXT_TO_MODEL, TRIPO_OTHER)
SKETCH_TO_MODEL = JsonGeneration("/generate/sketch-to-model", "generate.sketch_to_model", SketchToModelRequest(),
                                 Service.TRIPO, Kind.SKETCH_TO_MODEL, TRIPO_OTHER)
IMAGE_TO_MODEL = JsonGeneration("/generate/image-to-model", "generate.image_to_model", ImageToModelRequest(),
                                Service.TRIPO, Kind.IMAGE_TO_MODEL, TRIPO_OTHER)
JSON_GENERATIONS = {route.path: route for route in (TEXT_TO_MODEL, SKETCH_TO_MODEL, IMAGE_TO_MODEL)}


def accepted_answer(accepted: Accepted) -> tuple[int, dict[str, str]]:
    """The status and headers that go with an accepted request's body: 202 with a new task
    (or the first answer replayed, marked so), 200 with an earlier task that already
    answers it (a conversion the model already has)."""
    headers = {"Location": accepted.location}
    if accepted.replayed:
        headers[idempotency.REPLAYED_HEADER] = "true"
    return 200 if accepted.reused else 202, headers


def _accepted(service: Service, kind: Kind, args: dict, *, counted_in: Family | None, upload: Upload | None = None):
    """The answer to the request, made of its ``args``; it counts against the
    ``counted_in`` limit in the script that records its task (None: the route counted it
    first)."""
    caller = Caller(client=g.client, request_id=g.request_id, endpoint=request.endpoint or "",
                    idempotency_key=request.headers.get(idempotency.HEADER), claims=g.claims)
    accepted = accept(services(), caller, service=service, kind=kind, args=args, status_url=status_url,
                      unsettled=unsettled_creates(), upload=upload, counted_in=counted_in)
    status, headers = accepted_answer(accepted)
    return accepted.body, status, headers


def _json_accepted(route: JsonGeneration, args: dict):
    return _accepted(route.service, route.kind, args, counted_in=route.counted_in)


@blp.route("/text-to-model", methods=["POST"])
@blp.arguments(TEXT_TO_MODEL.schema, example={"prompt": "a friendly dragon sitting on a treasure chest",
                                            "style": "cartoon", "texture": True})
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@error_responses(blp, 401, 409, 422, 429, 503)
@blp.doc(parameters=[idempotency.HEADER_DOC])
def text_to_model(args: dict):
    """Text to 3D model (Tripo)

    Generates a 3D model (GLB) from a text prompt. `style` rewrites the prompt (see
    GET /styles); `texture: false` gives a cheaper untextured draft.
    """
    return _json_accepted(TEXT_TO_MODEL, args)


@blp.route("/sketch-to-model", methods=["POST"])
@blp.arguments(SKETCH_TO_MODEL.schema, example={"image_url": "https://example.com/sketch.png", "texture": False})
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@error_responses(blp, 401, 409, 422, 429, 503)
@blp.doc(parameters=[idempotency.HEADER_DOC])
def sketch_to_model(args: dict):
    """Sketch to 3D model (Tripo)

    Generates a 3D model from one image (a sketch or a photo) at a public https URL.
    `prompt` and `style` are recorded but do not change the result: Tripo's image
    endpoints take no prompt.
    """
    return _json_accepted(SKETCH_TO_MODEL, args)


@blp.route("/image-to-model", methods=["POST"])
@blp.arguments(
    IMAGE_TO_MODEL.schema,
    example={"image_urls": ["https://example.com/front.jpg", "https://example.com/left.jpg", None,
                            "https://example.com/right.jpg"]},
)
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@error_responses(blp, 401, 409, 422, 429, 503)
@blp.doc(parameters=[idempotency.HEADER_DOC])
def image_to_model(args: dict):
    """Photos to 3D model (Tripo)

    Generates a 3D model from photos of one object from several sides, given in the
    order **front, left, back, right** (`null` for a missing view; front is required).
    One photo uses Tripo's single-image generation, two to four its multiview
    generation. `prompt` and `style` are recorded but do not change the result.
    """
    return _json_accepted(IMAGE_TO_MODEL, args)


@blp.route("/refine-model", methods=["POST"])
@blp.arguments(RefineModelRequest(), example={"draft_model_task_id": "oE3h1pK3Qm0wB0tqXcK9Vd8a"})
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@error_responses(blp, 401, 404, 409, 422, 429, 503)
@blp.doc(parameters=[idempotency.HEADER_DOC])
@counted(TRIPO_REFINE)
def refine_model(args: dict):
    """Refine a model (Tripo)

    Re-textures a completed model at a higher quality (detailed PBR texture), keeping
    its geometry. The refinement is a new task with its own status. Recommended flow:
    a cheap untextured draft (`texture: false`), then refine the one the user likes.
    """
    return _accepted(Service.TRIPO, Kind.REFINE_MODEL, args, counted_in=None)


@blp.route("/convert-model", methods=["POST"])
@blp.arguments(ConvertModelRequest(), example={"model_task_id": "oE3h1pK3Qm0wB0tqXcK9Vd8a", "format": "usdz"})
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@blp.alt_response(200, schema=TaskAcceptedResponse, headers=_ACCEPTED_HEADERS,
                  description="The model already has this conversion (same format and options, not failed): "
                  "that task, which may still be running. Nothing new is made or paid for.")
@error_responses(blp, 401, 404, 409, 422, 429, 503)
@blp.doc(parameters=[idempotency.HEADER_DOC])
@counted(TRIPO_OTHER)
def convert_model(args: dict):
    """Convert a model to another file format (Tripo)

    Makes a file of a completed model task in another format, as its own task: `usdz` for
    AR (sized for AR Quick Look unless `face_limit` or `texture_size` say otherwise), `stl`
    or `3mf` for 3D printing (the full geometry, no texture), or `obj`, `fbx`, `gltf`.
    When completed, `result_url` redirects to the file. The model's status lists its
    conversions; asking again for one it has (same format and options) answers 200 with
    that task instead of a new one.
    """
    return _accepted(Service.TRIPO, Kind.CONVERT_MODEL, args, counted_in=None)


@blp.before_request
def _allow_uploads_on_the_upload_route():
    if request.endpoint == "generate.image_to_image":
        request.max_content_length = services().settings.max_upload_bytes + _MULTIPART_OVERHEAD_BYTES


@blp.route("/image-to-image", methods=["POST"])
@blp.arguments(ImageToImageRequest(), location=MULTIPART)
@blp.response(202, TaskAcceptedResponse, headers=_ACCEPTED_HEADERS)
@error_responses(blp, 401, 409, 413, 422, 429, 503)
@blp.doc(parameters=[idempotency.HEADER_DOC])
@counted(OPENAI)  # before the image is checked and stored
def image_to_image(args: dict):
    """Image to concept images (OpenAI)

    Turns a sketch or photo into `n` 2D concept images, guided by `prompt` (and `style`).
    Follow the task like any other; when completed, `result_urls` link to the images
    (and `?include=b64_json` on the status adds them inline).
    """
    image = args.pop("image")
    upload = _checked_upload(image)
    return _accepted(Service.OPENAI, Kind.IMAGE_TO_IMAGE, args, counted_in=None, upload=upload)


def _checked_upload(image) -> Upload:
    if not isinstance(image, FileStorage):
        abort(422, errors={MULTIPART: {"image": ["Must be a file."]}})
    max_bytes = services().settings.max_upload_bytes
    try:
        checked = check_image_off_loop(image.stream.read(max_bytes + 1), max_bytes=max_bytes)
    except UploadTooLarge as error:
        abort(413, message=str(error))
    except UploadRejected as error:
        abort(422, message=str(error), errors={MULTIPART: {"image": [str(error)]}})
    return Upload(data=checked.data, content_type=checked.content_type, filename=checked.filename)
