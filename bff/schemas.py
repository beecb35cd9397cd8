"""Request and response schemas: what the API accepts and returns, with examples.

Request schemas reject unknown fields (marshmallow's default ``RAISE``), so a typo in a
field name is a 422 rather than a silently ignored option.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from .styles import STYLE_NAMES, TRIPO, styled_prompt

TRIPO_PROMPT_LIMIT = 1024
SERVICES = ("tripo", "openai")


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return code >= 0x1F000 or 0x2600 <= code <= 0x27BF or code in (0x200D, 0xFE0F)


class TextToModelRequest(Schema):
    prompt = fields.String(
        required=True,
        validate=validate.Length(min=1, max=TRIPO_PROMPT_LIMIT),
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
    texture = fields.Boolean(
        load_default=True,
        metadata={"description": "false for an untextured model: cheaper and faster, good for a draft."},
    )

    @validates("prompt")
    def _prompt_is_printable_text(self, value: str, **_) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank.")
        if any(_is_emoji(char) for char in value):
            raise ValidationError("Must not contain emoji (Tripo rejects them).")

    @validates_schema(skip_on_field_errors=True)
    def _styled_prompt_fits(self, data: dict, **_) -> None:
        styled = styled_prompt(data["prompt"], data.get("style"), TRIPO)
        if len(styled) > TRIPO_PROMPT_LIMIT:
            room = TRIPO_PROMPT_LIMIT - (len(styled) - len(data["prompt"]))
            raise ValidationError(
                f"With style {data['style']!r} the prompt can be at most {room} characters.", field_name="prompt"
            )


class TaskAcceptedResponse(Schema):
    task_id = fields.String(metadata={"example": "oE3h1pK3Qm0wB0tqXcK9Vd8a"})
    service = fields.String(metadata={"example": "tripo"})
    status = fields.String(metadata={"example": "pending"})
    status_url = fields.String(metadata={"example": "/tasks/oE3h1pK3Qm0wB0tqXcK9Vd8a/status?service=tripo"})


class StatusQuery(Schema):
    service = fields.String(
        required=True,
        validate=validate.OneOf(SERVICES),
        metadata={"description": "The service the task was created for, as returned on creation."},
    )


class TaskErrorSchema(Schema):
    code = fields.String(metadata={"description": "Stable error code (see the README).", "example": "timeout"})
    message = fields.String(metadata={"example": "The task did not finish before its deadline."})


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
    preview_url = fields.String(allow_none=True, metadata={"description": "When completed: a preview image link."})
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
    sandbox = fields.Boolean(metadata={"description": "true when providers are local stand-ins (no cost)."})
