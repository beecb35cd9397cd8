"""An HTTP stand-in for OpenAI image edits (shared/providers.md, "OpenAI image edits").

It speaks the real wire format (multipart in; base64 images or an `{"error": ...}` body
out) so the project's real client can be tested against it over HTTP, and so the app
runs with no OpenAI key and no internet. The edits are real images: each output is the
input cropped to the requested size, posterized and tinted (a different tint per image)
in the requested format. A prompt containing the word "forbidden" is refused the way
the moderation system refuses one. An OpenAISandbox controller, found at
`app.extensions["openai_sandbox"]`, records every request and makes the stand-in
misbehave on demand (errors, dropped connections, slow answers).
"""

import base64
import colorsys
import dataclasses
import io
import re
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple

from flask import Flask, g, jsonify, request
from flask.typing import ResponseReturnValue
from PIL import Image, ImageDraw, ImageOps
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import HTTPException

from sandbox.faults import Controls, install_hooks

SANDBOX_API_KEY = "sk-sandbox"
EDITS_PATH = "/v1/images/edits"

MODELS = ("gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare")
RETIRED_MODELS = ("gpt-image-1",)  # shut down on 2026-10-23
PROMPT_MAX_CHARS = 32000
IMAGE_FIELDS = ("image", "image[]")
MAX_IMAGES = 16
MAX_IMAGE_BYTES = 50 * 1024 * 1024
N_MIN, N_MAX = 1, 10
CHOICES = {
    "size": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "quality": ("low", "medium", "high", "auto"),
    "background": ("transparent", "opaque", "auto"),
    "output_format": ("png", "jpeg", "webp"),
}
DEFAULTS = {"size": "auto", "quality": "auto", "background": "auto", "output_format": "png"}
# What "auto" becomes. The real service decides per request; the stand-in always picks these.
AUTO = {"size": "1024x1024", "quality": "medium", "background": "opaque"}
TRANSPARENT_FORMATS = ("png", "webp")
KNOWN_FIELDS = ("prompt", "model", "n", *IMAGE_FIELDS, *CHOICES)
# The documented sandbox trigger for the moderation path.
MODERATION_TRIGGER = re.compile(r"\bforbidden\b", re.IGNORECASE)

SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
# The `type` real answers carry for a status, used when an injected fault names none.
_TYPES_BY_STATUS = {403: "request_forbidden", 429: "requests"}

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# The fastest encoder settings: a demo and the tests wait for up to ten images per call.
_SAVE_OPTIONS = {"png": {"compress_level": 1}, "jpeg": {"quality": 85}, "webp": {"method": 0}}
_POSTERIZE_BITS = 2
_TINT_STRENGTH = 0.35
_GOLDEN_RATIO_CONJUGATE = 0.618034
# Plausible token counts, so a client that logs usage sees numbers; not OpenAI's pricing.
_OUTPUT_TOKENS_PER_MEGAPIXEL = {"low": 272, "medium": 1056, "high": 4160}
_TOKENS_PER_INPUT_IMAGE = 323
_CHARS_PER_TOKEN = 4


class OpenAIError(Exception):
    """An error answered in OpenAI's `{"error": {"message", "type", "param", "code"}}` body."""

    def __init__(self, status: int, code: str | None, message: str, type: str | None = None,
                 param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.type = type or _TYPES_BY_STATUS.get(
            status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})

    @classmethod
    def from_http(cls, error: HTTPException) -> "OpenAIError":
        return cls(error.code, None, error.description or error.name)

    def response(self) -> ResponseReturnValue:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return jsonify({"error": body}), self.status, self.headers


class FilePart(NamedTuple):
    """One file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    size: int


class RecordedRequest(NamedTuple):
    """One request as the stand-in received it; `form` maps each text field to its
    (first) value, `files` lists the file parts in the order sent."""

    method: str
    path: str
    form: dict
    files: list[FilePart]
    headers: dict
    received_at: float  # wall-clock time, to check rate windows


@dataclasses.dataclass(frozen=True)
class _Edit:
    """A validated edit request, with every "auto" resolved."""

    prompt: str
    images: list
    n: int
    size: str
    quality: str
    background: str
    output_format: str

    @property
    def dimensions(self) -> tuple[int, int]:
        width, height = self.size.split("x")
        return int(width), int(height)


class OpenAISandbox(Controls):
    """State and controls of one stand-in app; every method is thread-safe."""

    def __init__(self, api_key: str, latency_seconds: float, clock: Callable[[], float]):
        self.latency_seconds = latency_seconds
        super().__init__(api_key, clock)

    # --- observing -------------------------------------------------------------

    @property
    def processed(self) -> list[RecordedRequest]:
        """The requests whose images were made (the real service would bill them)."""
        with self._lock:
            return list(self._processed)

    # --- misbehaving -----------------------------------------------------------

    def fail_next(self, status: int = 500, code: str | None = None,
                  message: str = SERVER_ERROR_MESSAGE, type: str | None = None,
                  headers: dict | None = None, times: int = 1) -> None:
        """Answer the next `times` edits with this error, before any processing. `type`
        defaults to the one real answers carry for `status`."""
        self.faults.add_failure(EDITS_PATH, times, status=status, code=code, message=message,
                                type=type, headers=headers)

    def drop_next(self, after_processing: bool, times: int = 1) -> None:
        """Close the connection of the next `times` edits with no response; with
        `after_processing` the images are made first (the ambiguous, billed case)."""
        self.faults.add_drop(EDITS_PATH, after_processing, times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold the response of the next `times` edits for `seconds` on top of the
        latency, after the images are made. reset() cuts pending delays short."""
        self.faults.add_delay(EDITS_PATH, seconds, times)

    def reset(self) -> None:
        """Forget requests and pending faults; wake delayed responses."""
        with self._lock:
            self._processed: list[RecordedRequest] = []
        super().reset()

    # --- used by the app -------------------------------------------------------

    def mark_processed(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._processed.append(entry)


def create_openai_app(api_key: str = SANDBOX_API_KEY, latency_seconds: float = 0.0,
                      clock: Callable[[], float] = time.time) -> Flask:
    """The stand-in as a Flask app: image edits at /v1/images/edits. Each successful
    edit takes `latency_seconds` (the controller's attribute, changeable at run time)."""
    app = Flask(__name__)
    sandbox = OpenAISandbox(api_key, latency_seconds, clock)
    app.extensions["openai_sandbox"] = sandbox
    install_hooks(app, sandbox, OpenAIError, request_id_header="x-request-id",
                  new_request_id=lambda: f"req_{uuid.uuid4().hex}",
                  recorded_request=_recorded_request, authenticate=_check_auth)
    _install_edits_route(app, sandbox)
    return app


# --- request pipeline ---------------------------------------------------------


def _recorded_request() -> RecordedRequest:
    return RecordedRequest(request.method, request.path, request.form.to_dict(),
                           _file_parts(request.files), dict(request.headers), time.time())


def _check_auth(api_key: str) -> None:
    if request.headers.get("Authorization") != f"Bearer {api_key}":
        raise OpenAIError(401, "invalid_api_key", "Incorrect API key provided. You can find "
                          "your API key at https://platform.openai.com/account/api-keys.")


def _file_parts(files: MultiDict) -> list[FilePart]:
    return [FilePart(field, part.filename, part.content_type, _size(part))
            for field, part in files.items(multi=True)]


def _size(part: FileStorage) -> int:
    size = part.stream.seek(0, io.SEEK_END)
    part.stream.seek(0)  # the edit reads the part again
    return size


# --- the edit -----------------------------------------------------------------


def _install_edits_route(app: Flask, sandbox: OpenAISandbox) -> None:
    @app.post(EDITS_PATH)
    def edit():
        wanted = _read_edit(request.form, request.files)
        images = _render(wanted)
        sandbox.mark_processed(g.recorded)
        sandbox.faults.wait(sandbox.latency_seconds)
        return jsonify(_response_body(wanted, images, int(sandbox.clock())))


def _read_edit(form: MultiDict, files: MultiDict) -> _Edit:
    """The request's edit, or the error for its first problem; images are decoded last
    because that is the slow part."""
    _reject_unknown([*form.keys(), *files.keys()])
    _read_model(form.get("model"))
    prompt = _read_prompt(form.get("prompt"))
    n = _read_n(form.get("n", str(N_MIN)))
    choices = _read_choices(form)
    images = _read_images(files)
    _moderate(prompt)
    return _Edit(prompt, images, n, **choices)


def _invalid(param: str, code: str, message: str) -> OpenAIError:
    return OpenAIError(400, code, message, param=param)


def _missing(param: str) -> OpenAIError:
    return _invalid(param, "missing_required_parameter", f"Missing required parameter: '{param}'.")


def _reject_unknown(fields: list[str]) -> None:
    # response_format lands here too: GPT Image models do not know it.
    for field in fields:
        if field not in KNOWN_FIELDS:
            raise _invalid(field, "unknown_parameter", f"Unknown parameter: '{field}'.")


def _read_model(model: str | None) -> None:
    if not model:
        raise _missing("model")
    if model in RETIRED_MODELS:
        raise OpenAIError(404, "model_not_found", f"The model '{model}' has been shut down. "
                          f"Use one of: {', '.join(MODELS)}.")
    if model not in MODELS:
        raise OpenAIError(404, "model_not_found",
                          f"The model '{model}' does not exist or you do not have access to it.")


def _read_prompt(prompt: str | None) -> str:
    if not prompt:
        raise _missing("prompt")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise _invalid("prompt", "string_above_max_length",
                       f"Invalid 'prompt': string too long. Expected a string with maximum length "
                       f"{PROMPT_MAX_CHARS}, but got a string with length {len(prompt)} instead.")
    return prompt


def _read_n(raw: str) -> int:
    if not re.fullmatch(r"-?\d+", raw):
        raise _invalid("n", "invalid_type", f"Invalid type for 'n': expected an integer, "
                       f"but got {raw!r} instead.")
    n = int(raw)
    if n < N_MIN:
        raise _invalid("n", "integer_below_min_value", f"Invalid 'n': integer below minimum "
                       f"value. Expected a value >= {N_MIN}, but got {n} instead.")
    if n > N_MAX:
        raise _invalid("n", "integer_above_max_value", f"Invalid 'n': integer above maximum "
                       f"value. Expected a value <= {N_MAX}, but got {n} instead.")
    return n


def _read_choice(name: str, value: str) -> str:
    allowed = CHOICES[name]
    if value not in allowed:
        listed = ", ".join(f"'{choice}'" for choice in allowed[:-1])
        raise _invalid(name, "invalid_value", f"Invalid value: '{value}'. Supported values "
                       f"are: {listed}, and '{allowed[-1]}'.")
    return value


def _read_choices(form: MultiDict) -> dict[str, str]:
    """size, quality, background and output_format, with "auto" resolved."""
    choices = {name: _read_choice(name, form.get(name, DEFAULTS[name])) for name in CHOICES}
    transparent = choices["background"] == "transparent"
    if transparent and choices["output_format"] not in TRANSPARENT_FORMATS:
        raise _invalid("background", "invalid_value", "Invalid value: 'transparent'. A "
                       "transparent background needs output_format 'png' or 'webp'.")
    return {name: AUTO[name] if value == "auto" else value for name, value in choices.items()}


def _read_images(files: MultiDict) -> list[Image.Image]:
    parts = [part for field in IMAGE_FIELDS for part in files.getlist(field)]
    if not parts:
        raise _missing("image")
    if len(parts) > MAX_IMAGES:
        raise _invalid("image", "array_above_max_length", f"Invalid 'image': array too long. "
                       f"Expected an array with maximum length {MAX_IMAGES}, but got an array "
                       f"with length {len(parts)} instead.")
    return [_decode(part) for part in parts]


def _decode(part: FileStorage) -> Image.Image:
    data = part.read()
    if len(data) >= MAX_IMAGE_BYTES:
        raise _invalid("image", "image_too_large", f"Invalid 'image': {part.filename!r} is "
                       f"{len(data)} bytes; each image must be under 50 MB.")
    image = _open_image(data)
    if image is None:
        raise _invalid("image", "invalid_image_format", f"Invalid 'image': {part.filename!r} "
                       "is not a PNG, WEBP or JPEG image.")
    return image


def _open_image(data: bytes) -> Image.Image | None:
    """The decoded image, or None when `data` is not a whole PNG, WEBP or JPEG file."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return image if image.format in _PIL_FORMATS.values() else None


def _moderate(prompt: str) -> None:
    if MODERATION_TRIGGER.search(prompt):
        raise OpenAIError(400, "moderation_blocked", "Your request was rejected by the safety "
                          "system. If you believe this is an error, contact us at "
                          f"help.openai.com and include the request ID {g.request_id}.",
                          type="image_generation_user_error")


# --- making the images --------------------------------------------------------


def _render(edit: _Edit) -> list[bytes]:
    base = ImageOps.posterize(ImageOps.fit(_collage(edit.images), edit.dimensions), _POSTERIZE_BITS)
    mask = _subject_mask(base.size) if edit.background == "transparent" else None
    return [_encode(_tinted(base, index), mask, edit.output_format) for index in range(edit.n)]


def _collage(images: list[Image.Image]) -> Image.Image:
    """The inputs side by side at one height, so every reference shows in the edit."""
    height = min(image.height for image in images)
    scaled = [image.convert("RGB").resize((max(1, image.width * height // image.height), height))
              for image in images]
    canvas = Image.new("RGB", (sum(image.width for image in scaled), height))
    left = 0
    for image in scaled:
        canvas.paste(image, (left, 0))
        left += image.width
    return canvas


def _tinted(base: Image.Image, index: int) -> Image.Image:
    # Golden-ratio hue steps give every index a clearly different tint, whatever n is.
    hue = (index * _GOLDEN_RATIO_CONJUGATE) % 1.0
    colour = tuple(round(255 * channel) for channel in colorsys.hsv_to_rgb(hue, 0.8, 1.0))
    return Image.blend(base, Image.new("RGB", base.size, colour), _TINT_STRENGTH)


def _subject_mask(size: tuple[int, int]) -> Image.Image:
    """Opaque inside the inscribed ellipse, clear outside: a cut-out on no background."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, size[0] - 1, size[1] - 1), fill=255)
    return mask


def _encode(image: Image.Image, mask: Image.Image | None, output_format: str) -> bytes:
    if mask is not None:
        image.putalpha(mask)
    buffer = io.BytesIO()
    image.save(buffer, _PIL_FORMATS[output_format], **_SAVE_OPTIONS[output_format])
    return buffer.getvalue()


def _response_body(edit: _Edit, images: list[bytes], created: int) -> dict:
    return {
        "created": created,
        "data": [{"b64_json": base64.b64encode(image).decode("ascii")} for image in images],
        "usage": _usage(edit),
        "background": edit.background,
        "output_format": edit.output_format,
        "quality": edit.quality,
        "size": edit.size,
    }


def _usage(edit: _Edit) -> dict:
    width, height = edit.dimensions
    text_tokens = max(1, len(edit.prompt) // _CHARS_PER_TOKEN)
    image_tokens = _TOKENS_PER_INPUT_IMAGE * len(edit.images)
    megapixels = width * height / 1024 ** 2
    output_tokens = edit.n * round(_OUTPUT_TOKENS_PER_MEGAPIXEL[edit.quality] * megapixels)
    return {
        "total_tokens": text_tokens + image_tokens + output_tokens,
        "input_tokens": text_tokens + image_tokens,
        "output_tokens": output_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
    }
