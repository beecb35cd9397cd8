"""Request and response schemas: what the API accepts and returns, with examples.

Request schemas reject unknown fields (marshmallow's default ``RAISE``), so a typo in a
field name is a 422 rather than a silently ignored option.
"""

from __future__ import annotations

import unicodedata

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from bff.providers.tripo_requests import (
    CONVERT_TARGETS,
    FACE_LIMIT_RANGE,
    TEXTURE_SIZE_RANGE,
    TRIPO_CONVERT_DEFAULTS,
)
from bff.tasks.record import Service
from bff.tasks.styles import STYLE_NAMES, styled_prompt

from .image_urls import image_url_problem
from .services import services

TRIPO_PROMPT_LIMIT = 1024
OPENAI_PROMPT_LIMIT = 32000
IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")


# Characters that show nothing: whitespace, format characters (U+200B, U+202E...), and
# the unassigned or private-use ones.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cn", "Co", "Cs"})
_ORDINARY_WHITESPACE = frozenset("\t\n\r")


def _plain_text(value: str) -> None:
    """Text a person typed: visible characters, no control characters (other than tabs
    and line breaks) and no lone surrogates, which a provider may choke on or misread."""
    categories = [unicodedata.category(char) for char in value]
    if "Cs" in categories:
        raise ValidationError("Must be valid Unicode text (it contains a lone surrogate).")
    if any(category == "Cc" and char not in _ORDINARY_WHITESPACE for char, category in zip(value, categories,
                                                                                            strict=True)):
        raise ValidationError("Must not contain control characters.")
    if all(category in _INVISIBLE_CATEGORIES for category in categories):
        raise ValidationError("Must contain visible characters.")


class JsonBoolean(fields.Boolean):
    """true or false, and nothing else (marshmallow would also take 0, 1, "yes"...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return code >= 0x1F000 or 0x2600 <= code <= 0x27BF or code in (0x200D, 0xFE0F)


class TextToModelRequest(Schema):
    prompt = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=TRIPO_PROMPT_LIMIT), _plain_text],
        metadata={
            "description": "What to model, 1..1024 characters (less with a style, which adds words). No emoji.",
            "example": "a friendly dragon sitting on a treasure chest",
        },
    )
    style = fields.String(
        load_default=None,
        validate=validate.OneOf(STYLE_NAMES),
        metadata={"description": "A style name from GET /styles.", "example": "cartoon"},
    )
    texture = JsonBoolean(
        load_default=True,
        metadata={"description": "false for an untextured model: cheaper and faster, good for a draft."},
    )

    @validates("prompt")
    def _prompt_has_no_emoji(self, value: str, **_) -> None:
        if any(_is_emoji(char) for char in value):
            raise ValidationError("Must not contain emoji (Tripo rejects them).")

    @validates_schema(skip_on_field_errors=True)
    def _styled_prompt_fits(self, data: dict, **_) -> None:
        styled = styled_prompt(data["prompt"], data.get("style"), Service.TRIPO)
        if len(styled) > TRIPO_PROMPT_LIMIT:
            room = TRIPO_PROMPT_LIMIT - (len(styled) - len(data["prompt"]))
            raise ValidationError(
                f"With style {data['style']!r} the prompt can be at most {room} characters.", field_name="prompt"
            )


def _check_image_url(url: str) -> None:
    problem = image_url_problem(url, allow_http=services().settings.bff_sandbox)
    if problem:
        raise ValidationError(problem)


_IMAGE_PROMPT_NOTE = (
    "Accepted for compatibility and recorded with the task, but Tripo's image endpoints take no "
    "prompt: it does not change the 3D result."
)
_IMAGE_URL_NOTE = (
    "An https:// URL of a JPEG or PNG that Tripo downloads itself (at most 20 MB, each side "
    "20..6000 px). Public hosts only."
)
VIEW_ORDER = ("front", "left", "back", "right")


class _ImageInputOptions(Schema):
    prompt = fields.String(
        load_default=None,
        validate=[validate.Length(max=TRIPO_PROMPT_LIMIT), _plain_text],
        metadata={"description": _IMAGE_PROMPT_NOTE},
    )
    style = fields.String(
        load_default=None,
        validate=validate.OneOf(STYLE_NAMES),
        metadata={"description": f"A style name from GET /styles. {_IMAGE_PROMPT_NOTE}"},
    )
    texture = JsonBoolean(
        load_default=True,
        metadata={"description": "false for an untextured model: cheaper and faster, good for a draft."},
    )


class SketchToModelRequest(_ImageInputOptions):
    image_url = fields.String(
        required=True,
        validate=_check_image_url,
        metadata={"description": f"The sketch. {_IMAGE_URL_NOTE}", "example": "https://example.com/sketch.png"},
    )


class ImageToModelRequest(_ImageInputOptions):
    image_urls = fields.List(
        fields.String(allow_none=True, validate=_check_image_url),
        required=True,
        metadata={
            "description": "Photos of one object from several sides, in the order **front, left, back, right**. "
            "The front view is required; `null` marks a missing view. One photo makes a single-image model; "
            f"two to four make a multiview model. {_IMAGE_URL_NOTE}",
            "example": ["https://example.com/front.jpg", "https://example.com/left.jpg", None,
                        "https://example.com/right.jpg"],
            "minItems": 1,
            "maxItems": 4,
        },
    )

    @validates("image_urls")
    def _views_in_order(self, value: list, **_) -> None:
        order = ", ".join(VIEW_ORDER)
        if not 1 <= len(value) <= len(VIEW_ORDER):
            raise ValidationError(f"Give 1 to 4 views, in the order {order} (null for a missing view).")
        if value[0] is None:
            raise ValidationError(f"The first entry is the front view and is required (order: {order}).")


class RefineModelRequest(Schema):
    draft_model_task_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "The task_id of a completed model task of this service (for example a cheap "
            "`texture: false` draft).",
            "example": "oE3h1pK3Qm0wB0tqXcK9Vd8a",
        },
    )


def _convert_default(option: str, otherwise: object) -> str:
    """The defaults of one option, read from the table that applies them."""
    per_format = [f"{value} for {name}" for name, target in CONVERT_TARGETS.items()
                  if (value := getattr(target, option)) is not None]
    return f"Default: {', '.join(per_format)}; else {otherwise}."


class ConvertModelRequest(Schema):
    model_task_id = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The task_id of a completed model task (generated or refined; not a conversion).",
                  "example": "oE3h1pK3Qm0wB0tqXcK9Vd8a"},
    )
    format = fields.String(
        required=True,
        validate=validate.OneOf(tuple(CONVERT_TARGETS)),
        metadata={"description": "usdz for AR (AR Quick Look), stl or 3mf for 3D printing, obj, fbx or gltf.",
                  "example": "usdz"},
    )
    face_limit = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(*FACE_LIMIT_RANGE),
        metadata={"description": f"At most this many faces. {_convert_default('face_limit', 'the full geometry')}",
                  "example": 100000},
    )
    texture_size = fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(*TEXTURE_SIZE_RANGE),
        metadata={"description": "Texture width and height in pixels. "
                  f"{_convert_default('texture_size', TRIPO_CONVERT_DEFAULTS['texture_size'])} Only for formats that "
                  "carry a texture (not stl, 3mf).", "example": 2048},
    )

    @validates_schema(skip_on_field_errors=True)
    def _texture_applies(self, data: dict, **_) -> None:
        if data["texture_size"] is not None and not CONVERT_TARGETS[data["format"]].textured:
            textured = ", ".join(name for name, target in CONVERT_TARGETS.items() if target.textured)
            raise ValidationError(f"{data['format']} carries no texture; texture_size is only for {textured}.",
                                  field_name="texture_size")


class ImageToImageRequest(Schema):
    image = Upload(
        required=True,
        metadata={"description": "The sketch or photo: PNG, JPEG or WebP, at most BFF_MAX_UPLOAD_MB (20 MB by "
                  "default) and 8192 px a side. Checked by decoding it."},
    )
    prompt = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=OPENAI_PROMPT_LIMIT), _plain_text],
        metadata={"description": "What the concept images should show, 1..32000 characters.",
                  "example": "a cute robot toy, front view"},
    )
    # No null defaults here: Swagger UI would offer "null", which a form sends as text.
    style = fields.String(
        validate=validate.OneOf(STYLE_NAMES),
        metadata={"description": "A style name from GET /styles."},
    )
    n = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=10),
        metadata={"description": "How many images, 1..10.", "example": 2},
    )
    size = fields.String(load_default="1024x1024", validate=validate.OneOf(IMAGE_SIZES))
    background = fields.String(
        validate=validate.OneOf(BACKGROUNDS),
        metadata={"description": "transparent, opaque or auto; the provider's default when absent."},
    )


class TaskAcceptedResponse(Schema):
    task_id = fields.String(metadata={"example": "oE3h1pK3Qm0wB0tqXcK9Vd8a"})
    service = fields.String(metadata={"example": "tripo"})
    status = fields.String(metadata={"example": "pending"})
    status_url = fields.String(metadata={"example": "/tasks/oE3h1pK3Qm0wB0tqXcK9Vd8a/status?service=tripo"})


class StatusQuery(Schema):
    service = fields.String(
        required=True,
        validate=validate.OneOf([str(service) for service in Service]),
        metadata={"description": "The service the task was created for, as returned on creation."},
    )
    include = fields.String(
        load_default=None,
        validate=validate.OneOf(("b64_json", "signed_urls")),
        metadata={"description": "`b64_json`: add the images of a completed openai task inline, base64-encoded. "
                  "`signed_urls`: with object storage configured, add direct download links into it "
                  "(`signed_result_urls`, `signed_preview_url`, valid until `signed_urls_expire_at`)."},
    )


class TaskErrorSchema(Schema):
    code = fields.String(metadata={"description": "Stable error code (see the README).", "example": "timeout"})
    message = fields.String(metadata={"example": "The task did not finish before its deadline."})


class ConversionSchema(Schema):
    task_id = fields.String(metadata={"example": "Qm9x1pK3Qm0wB0tqXcK9Vd8b"})
    format = fields.String(metadata={"example": "usdz"})
    face_limit = fields.Integer(allow_none=True, metadata={"description": "null: the full geometry.",
                                                           "example": 100000})
    texture_size = fields.Integer(allow_none=True, metadata={"description": "null: no texture (stl, 3mf).",
                                                             "example": 2048})
    status = fields.String(metadata={"enum": ["pending", "processing", "completed", "failed"],
                                     "example": "completed"})
    status_url = fields.String()


class TaskStatusResponse(Schema):
    task_id = fields.String()
    service = fields.String(metadata={"example": "tripo"})
    status = fields.String(
        metadata={"enum": ["pending", "processing", "completed", "failed"], "example": "processing"}
    )
    progress = fields.Integer(metadata={"description": "0..100", "example": 42})
    result_url = fields.String(
        allow_none=True,
        metadata={
            "description": "When completed: a BFF link that redirects to the model file. It stays valid "
            "although the provider's own links expire after minutes.",
            "example": None,
        },
    )
    result_urls = fields.List(
        fields.String(),
        allow_none=True,
        metadata={"description": "When completed: links to every result in order (an openai task's images; "
                  "a model task's one model)."},
    )
    preview_url = fields.String(allow_none=True, metadata={"description": "When completed: a preview image link."})
    result_format = fields.String(
        metadata={"description": "Only on a completed model task: the model file's format, which is also its file "
                  "extension: glb, gltf, usdz, stl, 3mf, obj, fbx, or zip (a format with side files, packed).",
                  "example": "usdz"},
    )
    conversions = fields.List(
        fields.Nested(ConversionSchema),
        metadata={"description": "Only on a completed model task that can be converted: its conversions, oldest "
                  "first (the latest of each format and options). Reuse one rather than converting again."},
    )
    queue_position = fields.Integer(
        metadata={"description": "Only while the task waits for provider capacity: 1 means it is sent next.",
                  "example": 3},
    )
    b64_json = fields.List(
        fields.String(),
        metadata={"description": "Only with `?include=b64_json` on a completed openai task: the images, base64."},
    )
    signed_result_urls = fields.List(
        fields.String(),
        metadata={"description": "Only with `?include=signed_urls` on a completed task whose files are in the "
                  "service's storage: direct links, in the order of `result_urls`."},
    )
    signed_preview_url = fields.String(
        allow_none=True, metadata={"description": "Only with `?include=signed_urls`: the preview's direct link."})
    signed_urls_expire_at = fields.String(
        metadata={"description": "Only with `?include=signed_urls`: when the direct links stop working (ISO 8601)."})
    error = fields.Nested(TaskErrorSchema, allow_none=True, metadata={"description": "When failed: why."})
    created_at = fields.String(metadata={"description": "ISO 8601, UTC", "example": "2026-11-24T10:00:00Z"})
    updated_at = fields.String(metadata={"description": "ISO 8601, UTC", "example": "2026-11-24T10:00:42Z"})


class StyleSchema(Schema):
    name = fields.String(metadata={"example": "cartoon"})
    label = fields.String(metadata={"example": "Cartoon"})
    description = fields.String(metadata={"example": "Rounded, playful shapes with exaggerated features."})


class StyleListResponse(Schema):
    styles = fields.List(fields.Nested(StyleSchema))


class HealthResponse(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadinessResponse(Schema):
    status = fields.String(metadata={"example": "ready"})
    redis = fields.String(metadata={"example": "ok"})
    storage = fields.String(
        metadata={"enum": ["ok", "unreachable", "not configured"], "example": "ok",
                  "description": "The result storage (BFF_STORAGE_URL). While it is unreachable the service stays "
                  "ready: finished tasks wait at 99% until their files are stored."})
    sandbox = fields.Boolean(metadata={"description": "true when providers are local stand-ins (no cost)."})


class MeResponse(Schema):
    user = fields.String(metadata={"description": "Who the credits belong to: the signed-in user, else the app's "
                                   "client (its key name, or its address).", "example": "key:ios"})
    plan = fields.String(allow_none=True, metadata={"description": "The user's plan, from their token; null: none.",
                                                    "example": "pro"})
    day = fields.String(metadata={"description": "Today, in UTC: the day the credits below count.",
                                  "example": "2026-11-24"})
    allowance = fields.Integer(allow_none=True, metadata={
        "description": "Credits for today, extra credits granted included; null: unlimited.", "example": 2000})
    granted = fields.Integer(metadata={"description": "Extra credits granted for today (in `allowance`).",
                                       "example": 0})
    charged = fields.Integer(metadata={"description": "Credits charged today for finished tasks.", "example": 120})
    reserved = fields.Integer(metadata={"description": "Credits held by tasks still running: charged or given back "
                                        "when they end.", "example": 30})
    remaining = fields.Integer(allow_none=True, metadata={
        "description": "What can still be spent today; null: unlimited.", "example": 1850})
    resets_at = fields.String(metadata={"description": "When a new day's allowance starts (midnight UTC), ISO 8601.",
                                        "example": "2026-11-25T00:00:00Z"})
    prices = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Credits each generation route costs with its default options, by route (`POST "
        "/generate/<route>`). Options change some prices: `texture: false` is cheaper, and `n` images "
        "cost `n` times the price of one.",
        "example": {"text-to-model": 20, "sketch-to-model": 30, "image-to-model": 30, "refine-model": 20,
                    "convert-model": 10, "image-to-image": 5}})


class ErrorResponse(Schema):
    """The one error shape of every status."""

    code = fields.Integer(metadata={"description": "The HTTP status.", "example": 422})
    status = fields.String(metadata={"description": "The HTTP reason phrase.", "example": "Unprocessable Entity"})
    message = fields.String(
        metadata={"description": "What is wrong, for a person.",
                  "example": "The request is invalid; see 'errors' for each field."}
    )
    reason = fields.String(
        metadata={"description": "Only on some refusals: a word for the app to act on: "
                  "`credits_exhausted` (429: the user's credits for today are used up) or "
                  "`service_budget_exhausted` (503: the service's are), and `Retry-After` then says when the day "
                  "resets (UTC); on a 401 for a sign-in token, which check refused it (also in "
                  "`WWW-Authenticate`), such as `expired`.",
                  "example": "credits_exhausted"}
    )
    errors = fields.Dict(
        metadata={"description": "Per-field details, by location, when there are any.",
                  "example": {"json": {"style": ["Must be one of: realistic, cartoon, low-poly, sculpture, toy, "
                                                 "miniature."]}}}
    )
