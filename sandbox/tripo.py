"""An HTTP stand-in for Tripo apiv3 (shared/providers.md, "Tripo apiv3").

It speaks Tripo's wire format so the project's real HTTP client can be tested against
it, and so the app runs with no Tripo key and no internet. Tasks move through
queued -> running -> success on an injectable clock; outputs are small real model files
(GLB, or the format a convert task asks for) and PNG previews behind signed URLs that
expire. A TripoSandbox controller, found at `app.extensions["tripo_sandbox"]`, records
every request and makes the stand-in misbehave on demand (errors, dropped connections,
slow answers, failed tasks).
"""

import dataclasses
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from sandbox import assets, model_formats
from sandbox.faults import Controls, install_hooks

GENERATION_MODELS = ("v3.1-20260211", "v3.0-20250812", "v2.5-20250123", "P1-20260311")
RETEXTURE_MODELS = ("v2.5-20250123", "v3.0-20250812", "v3.5-20260815")
P1_REJECTED_KEYS = ("quad", "smart_low_poly", "generate_parts", "geometry_quality")
TEXTURE_QUALITIES = ("standard", "detailed", "extreme")
PROMPT_MAX_CHARS = 1024
LIST_MAX_IDS = 100
MULTIVIEW_SLOTS = 4  # front, left, back, right
# How a missing multiview slot is written is uncertain (providers.md); the stand-in
# accepts only the official Python SDK's JSON null, so a client sending "" or {} fails.
MISSING_VIEW = None
# Whether Tripo accepts a lower-case convert format is uncertain (providers.md); the
# stand-in accepts only the upper case the official SDKs send, so a client sending
# "usdz" fails.
CONVERT_FORMATS = tuple(model_formats.BY_FORMAT)  # GLTF, USDZ, FBX, OBJ, STL, 3MF
TEXTURE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TGA")
# The convert options and the type each must have (providers.md, "Convert a model").
CONVERT_OPTION_TYPES = {
    "face_limit": int, "texture_size": int, "texture_format": str, "quad": bool,
    "force_symmetry": bool, "flatten_bottom": bool, "flatten_bottom_threshold": float,
    "scale_factor": float, "pivot_to_center_bottom": bool, "with_animation": bool,
    "pack_uv": bool, "bake": bool, "export_vertex_colors": bool, "export_orientation": str,
    "fbx_preset": str, "part_names": list,
}

CREATE_PATHS = {
    "/generation/text-to-model": "text_to_model",
    "/generation/image-to-model": "image_to_model",
    "/generation/multiview-to-model": "multiview_to_model",
    "/models/texture": "texture_model",
    "/models/convert": "convert_model",
}
CREDITS = {"text_to_model": 20, "image_to_model": 30, "multiview_to_model": 30, "texture_model": 10,
           "convert_model": 10}

QUEUED_FRACTION = 0.1
TERMINAL_STATUSES = ("success", "failed", "cancelled", "banned", "expired")
# Defaults for set_outcome; the stand-in's choice, not documented Tripo values.
DEFAULT_FAILURES = {
    "failed": (1001, "The task failed."),
    "cancelled": (1001, "The task was cancelled."),
    "banned": (2008, "The input violates the content policy."),
    "expired": (1001, "The task expired."),
}
OUTCOMES = tuple(DEFAULT_FAILURES) + ("stall",)

CODE_SERVER_ERROR = 1000
CODE_AUTH = 1002
CODE_INVALID_PARAMETER = 1004
CODE_TASK_NOT_FOUND = 2001
CODE_BAD_MODEL_VERSION = 2015

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_IMAGE_INPUT = re.compile(rf"(https?://\S+|file_{_UUID}|{_UUID})")
# Rough emoji ranges: enough to catch a client that forwards emoji from a user's prompt.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")

PREVIEW_FILE = "preview.png"


class TripoError(Exception):
    """An error answered in Tripo's envelope."""

    def __init__(self, status: int, code: int, message: str,
                 suggestion: str = "Check the request against the API reference.", headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.suggestion, self.headers = suggestion, dict(headers or {})

    @classmethod
    def from_http(cls, error: HTTPException) -> "TripoError":
        code = CODE_SERVER_ERROR if error.code >= 500 else CODE_INVALID_PARAMETER
        return cls(error.code, code, error.description or error.name)

    def response(self) -> ResponseReturnValue:
        body = {"code": self.code, "message": self.message, "suggestion": self.suggestion,
                "request_id": g.get("request_id") or str(uuid.uuid4())}
        return jsonify(body), self.status, self.headers


class RecordedRequest(NamedTuple):
    """One request as the stand-in received it."""

    method: str
    path: str
    json: object
    headers: dict


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a task ends when it does not succeed."""

    status: str
    error_code: int | None = None
    error_message: str | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """A task's fixed facts; its status is derived from the clock (see state())."""

    task_id: str
    type: str
    body: dict
    textured: bool
    created_at: float
    queued_until: float
    finish_at: float
    outcome: Outcome | None = None

    def state(self, now: float) -> tuple[str, int]:
        """(status, progress) at time `now`."""
        stalled = self.outcome is not None and self.outcome.status == "stall"
        if now >= self.finish_at and not stalled:
            return (self.outcome.status, 0) if self.outcome else ("success", 100)
        if now < self.queued_until:
            return "queued", 0
        span = self.finish_at - self.queued_until
        fraction = (now - self.queued_until) / span if span > 0 else 1.0
        return "running", max(0, min(99, int(99 * fraction)))


class TripoSandbox(Controls):
    """State and controls of one stand-in app; every method is thread-safe."""

    def __init__(self, api_key: str, task_seconds: float, url_ttl_seconds: float,
                 clock: Callable[[], float]):
        self.task_seconds = task_seconds
        self.url_ttl_seconds = url_ttl_seconds
        super().__init__(api_key, clock)

    # --- observing -------------------------------------------------------------

    def creates(self) -> list[RecordedRequest]:
        """The requests to the create endpoints (convert included)."""
        return [r for r in self.requests if r.method == "POST" and _create_type(r.path)]

    @property
    def tasks(self) -> dict[str, Task]:
        """A snapshot of the tasks by id."""
        with self._lock:
            return dict(self._tasks)

    # --- misbehaving -----------------------------------------------------------

    def fail_next(self, path_suffix: str, status: int = 500, code: int = 1001,
                  message: str = "Internal server error.", headers: dict | None = None,
                  times: int = 1) -> None:
        """Answer the next `times` requests whose path ends with `path_suffix` with this
        error, before any processing (nothing is created)."""
        self.faults.add_failure(path_suffix, times, status=status, code=code, message=message,
                                headers=headers)

    def drop_next(self, path_suffix: str, after_processing: bool, times: int = 1) -> None:
        """Close the connection of the next `times` matching requests with no response;
        with `after_processing` the request takes effect first (the ambiguous case)."""
        self.faults.add_drop(path_suffix, after_processing, times)

    def delay_next(self, path_suffix: str, seconds: float, times: int = 1) -> None:
        """Hold the response of the next `times` matching requests for `seconds`. The
        request takes effect first, as when a real create succeeds but answers late.
        reset() cuts pending delays short."""
        self.faults.add_delay(path_suffix, seconds, times)

    def set_outcome(self, task_id: str | None, status: str, error_code: int | None = None,
                    error_message: str | None = None) -> None:
        """Make the task (None: the next task created) end with `status` instead of
        success; "stall" keeps it running at 99% for ever."""
        outcome = _make_outcome(status, error_code, error_message)
        with self._lock:
            if task_id is None:
                self._next_outcome = outcome
            else:
                self._replace_task(task_id, outcome=outcome)

    def complete_now(self, task_id: str) -> None:
        """End the task now: with its set outcome if terminal, else (a stall too) success."""
        with self._lock:
            task = self._tasks[task_id]
            stalled = task.outcome is not None and task.outcome.status == "stall"
            self._replace_task(task_id, finish_at=min(task.finish_at, self.clock()),
                               outcome=None if stalled else task.outcome)

    def reset(self) -> None:
        """Forget requests, tasks and pending faults; wake delayed responses."""
        with self._lock:
            self._tasks: dict[str, Task] = {}
            self._next_outcome: Outcome | None = None
        super().reset()

    # --- used by the app -------------------------------------------------------

    def add_task(self, task_type: str, body: dict, textured: bool) -> Task:
        now = self.clock()
        with self._lock:
            task = Task(
                task_id=str(uuid.uuid4()), type=task_type, body=body, textured=textured,
                created_at=now, queued_until=now + QUEUED_FRACTION * self.task_seconds,
                finish_at=now + self.task_seconds, outcome=self._next_outcome,
            )
            self._next_outcome = None
            self._tasks[task.task_id] = task
        return task

    def _replace_task(self, task_id: str, **changes) -> None:
        self._tasks[task_id] = dataclasses.replace(self._tasks[task_id], **changes)


def _make_outcome(status: str, error_code: int | None, error_message: str | None) -> Outcome:
    if status not in OUTCOMES:
        raise ValueError(f"status must be one of {OUTCOMES}, not {status!r}")
    if status == "stall":
        return Outcome(status)
    default_code, default_message = DEFAULT_FAILURES[status]
    return Outcome(status, error_code if error_code is not None else default_code,
                   error_message if error_message is not None else default_message)


def _create_type(path: str) -> str | None:
    for suffix, task_type in CREATE_PATHS.items():
        if path.endswith(suffix):
            return task_type
    return None


class _Signer:
    """Signs output URLs the way a storage bucket does: path + expiry under an HMAC."""

    def __init__(self, ttl_seconds: float):
        self._secret = secrets.token_bytes(32)
        self._ttl = ttl_seconds

    def url(self, root_url: str, path: str, now: float) -> str:
        expires = int(now + self._ttl)
        return f"{root_url}{path}?expires={expires}&signature={self._sign(path, expires)}"

    def check(self, path: str, args, now: float) -> Response | None:
        """None when the URL is valid at `now`, else the bucket's 403 answer."""
        expires = args.get("expires", "")
        signature = args.get("signature", "")
        if not expires.isdigit() or not hmac.compare_digest(signature,
                                                            self._sign(path, int(expires))):
            return _bucket_error(403, "SignatureDoesNotMatch",
                                 "The request signature does not match.")
        if now > int(expires):
            return _bucket_error(403, "AccessDenied", "Request has expired.")
        return None

    def _sign(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _bucket_error(status: int, code: str, message: str) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>")
    return Response(body, status=status, mimetype="application/xml")


def create_tripo_app(api_key: str = "tsk_sandbox", task_seconds: float = 20.0,
                     url_ttl_seconds: float = 300.0,
                     clock: Callable[[], float] = time.time) -> Flask:
    """The stand-in as a Flask app: apiv3 under /v3, output files under /files."""
    app = Flask(__name__)
    sandbox = TripoSandbox(api_key, task_seconds, url_ttl_seconds, clock)
    signer = _Signer(url_ttl_seconds)
    app.extensions["tripo_sandbox"] = sandbox
    install_hooks(app, sandbox, TripoError, request_id_header="X-Tripo-Trace-ID",
                  new_request_id=lambda: str(uuid.uuid4()), recorded_request=_recorded_request,
                  authenticate=_check_auth)
    _install_task_routes(app, sandbox, signer)
    _install_create_routes(app, sandbox)
    _install_file_route(app, sandbox, signer)
    return app


# --- request pipeline ---------------------------------------------------------


def _recorded_request() -> RecordedRequest:
    return RecordedRequest(request.method, request.path, request.get_json(silent=True),
                           dict(request.headers))


def _check_auth(api_key: str) -> None:
    # Output files are outside /v3: their signed URLs are fetched with no key.
    if not request.path.startswith("/v3/"):
        return
    if request.headers.get("Authorization") != f"Bearer {api_key}":
        raise TripoError(401, CODE_AUTH, "Invalid or missing API key.",
                         "Send the header 'Authorization: Bearer <your tsk_ key>'.")


def _ok(data: dict) -> Response:
    return jsonify({"code": 0, "data": data})


def _invalid(message: str) -> TripoError:
    return TripoError(400, CODE_INVALID_PARAMETER, message)


def _json_object() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object sent as application/json.")
    return body


# --- reading tasks ------------------------------------------------------------


def _install_task_routes(app: Flask, sandbox: TripoSandbox, signer: _Signer) -> None:
    def render(task: Task) -> dict:
        return _task_json(task, sandbox.clock(), signer)

    @app.get("/v3/tasks/<task_id>")
    def get_task(task_id: str):
        task = sandbox.tasks.get(task_id)
        if task is None:
            raise TripoError(404, CODE_TASK_NOT_FOUND, f"Task {task_id} not found.",
                             "Check the task id and the API key it was created with.")
        return _ok(render(task))

    @app.post("/v3/tasks/list")
    def list_tasks():
        ids = _json_object().get("task_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= LIST_MAX_IDS \
                or not all(isinstance(i, str) for i in ids):
            raise _invalid(f"task_ids must be a list of 1 to {LIST_MAX_IDS} task id strings.")
        tasks = sandbox.tasks
        found = {i: render(tasks[i]) for i in ids if i in tasks}
        missed = list(dict.fromkeys(i for i in ids if i not in tasks))
        return _ok({"tasks": found, "missed": missed})

    @app.get("/v3/account/balance")
    def balance():
        return _ok({"balance": 1000.0, "frozen": 0.0})


def _task_json(task: Task, now: float, signer: _Signer) -> dict:
    status, progress = task.state(now)
    data = {"task_id": task.task_id, "type": task.type, "status": status, "progress": progress,
            "output": {}, "created_at": _iso(task.created_at)}
    if status in TERMINAL_STATUSES:
        data["completed_at"] = _iso(task.finish_at)
    if status == "success":
        root = request.root_url.rstrip("/")
        data["output"] = {
            "model_url": signer.url(root, f"/files/{task.task_id}/{_model_file_name(task)}", now),
            "rendered_image_url": signer.url(root, f"/files/{task.task_id}/{PREVIEW_FILE}", now),
        }
        data["credits_consumed"] = CREDITS[task.type]
    elif status in TERMINAL_STATUSES:
        data["error_code"] = task.outcome.error_code
        data["error_message"] = task.outcome.error_message
    return data


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- creating tasks -----------------------------------------------------------


def _install_create_routes(app: Flask, sandbox: TripoSandbox) -> None:
    validators = {
        "text_to_model": _validate_text,
        "image_to_model": _validate_image,
        "multiview_to_model": _validate_multiview,
        "texture_model": lambda body: _validate_retexture(body, sandbox),
        "convert_model": lambda body: _validate_convert(body, sandbox),
    }

    def textured(task_type: str, body: dict) -> bool:
        if task_type == "convert_model":
            return sandbox.tasks[body["input"]].textured  # a conversion keeps its source's look
        # Re-texturing always paints; otherwise pbr (default on) forces texture on.
        return bool(task_type == "texture_model"
                    or body.get("texture", True) or body.get("pbr", True))

    def create(task_type: str):
        body = _json_object()
        validators[task_type](body)
        return _ok({"task_id": sandbox.add_task(task_type, body, textured(task_type, body)).task_id})

    for suffix, task_type in CREATE_PATHS.items():
        app.add_url_rule(f"/v3{suffix}", f"create_{task_type}", create, methods=["POST"],
                         defaults={"task_type": task_type})


def _validate_model(body: dict, allowed: tuple[str, ...]) -> None:
    model = body.get("model")
    if model is None:
        raise _invalid("model is required.")
    if not isinstance(model, str):
        raise _invalid("model must be a string.")
    if model not in allowed:
        raise TripoError(400, CODE_BAD_MODEL_VERSION, f"Unsupported model version {model!r}.",
                         f"Use one of: {', '.join(allowed)}.")
    rejected = [key for key in P1_REJECTED_KEYS if key in body]
    if model.startswith("P1-") and rejected:
        raise _invalid(f"Model {model} does not accept {', '.join(rejected)}.")


def _validate_texture_options(body: dict) -> None:
    for key in ("texture", "pbr"):
        if key in body and not isinstance(body[key], bool):
            raise _invalid(f"{key} must be a boolean.")
    if "texture_quality" in body and body["texture_quality"] not in TEXTURE_QUALITIES:
        raise _invalid(f"texture_quality must be one of {', '.join(TEXTURE_QUALITIES)}.")


def _validate_text(body: dict) -> None:
    _validate_model(body, GENERATION_MODELS)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _invalid("prompt is required and must be a non-empty string.")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise _invalid(f"prompt must be at most {PROMPT_MAX_CHARS} characters.")
    if _EMOJI.search(prompt):
        raise _invalid("prompt must not contain emoji.")
    _validate_texture_options(body)


def _check_image_input(value, name: str) -> None:
    if not isinstance(value, str) or not _IMAGE_INPUT.fullmatch(value):
        raise _invalid(f"{name} must be an http(s) URL, a file_<uuid> token or a task id; "
                       "data URIs are not accepted.")


def _validate_image(body: dict) -> None:
    _validate_model(body, GENERATION_MODELS)
    _check_image_input(body.get("input"), "input")
    _validate_texture_options(body)


def _validate_multiview(body: dict) -> None:
    _validate_model(body, GENERATION_MODELS)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != MULTIVIEW_SLOTS:
        raise _invalid("inputs must list exactly four views: front, left, back, right.")
    if inputs[0] is MISSING_VIEW:
        raise _invalid("inputs[0] (the front view) is required.")
    for index, view in enumerate(inputs):
        if view is not MISSING_VIEW:
            _check_image_input(view, f"inputs[{index}]")
    if sum(view is not MISSING_VIEW for view in inputs) < 2:
        raise _invalid("At least two views are required.")
    _validate_texture_options(body)


def _validate_retexture(body: dict, sandbox: TripoSandbox) -> None:
    _validate_model(body, RETEXTURE_MODELS)
    _validate_texture_options(body)
    _succeeded_source(body, sandbox)


def _succeeded_source(body: dict, sandbox: TripoSandbox) -> Task:
    """The task named by `input`, which must have succeeded. Unknown and unfinished
    source tasks both answer 1004 (invalid parameter): the input is a parameter of this
    call, and 2001 is kept for reading a task by id."""
    source = sandbox.tasks.get(body.get("input")) if isinstance(body.get("input"), str) else None
    if source is None:
        raise _invalid("input must be the task id of a model task of this account.")
    if source.state(sandbox.clock())[0] != "success":
        raise _invalid("input must be a model task that has succeeded.")
    return source


def _validate_convert(body: dict, sandbox: TripoSandbox) -> None:
    # Keys the stand-in does not know are ignored, as on the other create endpoints;
    # tests see the exact body a client sent through creates().
    if "model" in body:
        raise _invalid("A conversion has no model version: do not send model.")
    if body.get("format") not in CONVERT_FORMATS:
        raise _invalid(f"format must be one of {', '.join(CONVERT_FORMATS)}.")
    _validate_convert_options(body)
    if _succeeded_source(body, sandbox).type == "convert_model":
        raise _invalid("input must be a generated or re-textured model, not a conversion.")


def _validate_convert_options(body: dict) -> None:
    for key, kind in CONVERT_OPTION_TYPES.items():
        if key in body and not _is_a(body[key], kind):
            raise _invalid(f"{key} must be of type {kind.__name__}.")
    if body.get("face_limit", 1) <= 0:
        raise _invalid("face_limit must be a positive integer.")
    if body.get("texture_format", TEXTURE_FORMATS[0]) not in TEXTURE_FORMATS:
        raise _invalid(f"texture_format must be one of {', '.join(TEXTURE_FORMATS)}.")
    if not all(isinstance(name, str) for name in body.get("part_names", [])):
        raise _invalid("part_names must be a list of strings.")


def _is_a(value, kind: type) -> bool:
    # JSON has one number type: 2 is a valid float. A bool is never a number here,
    # although Python's bool is an int.
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def _output_format(body: dict) -> str:
    """The format a conversion produces: `quad` forces FBX whatever was asked."""
    return "FBX" if body.get("quad") else body["format"]


# --- output files -------------------------------------------------------------


def _install_file_route(app: Flask, sandbox: TripoSandbox, signer: _Signer) -> None:
    @app.get("/files/<task_id>/<name>")
    def output_file(task_id: str, name: str):
        denied = signer.check(request.path, request.args, sandbox.clock())
        if denied is not None:
            return denied
        task = sandbox.tasks.get(task_id)
        if task is not None and name == PREVIEW_FILE:
            return Response(assets.preview_png(), mimetype="image/png")
        if task is not None and name == _model_file_name(task):
            model = _model_file(task)
            return Response(model.build(task.textured), mimetype=model.content_type)
        return _bucket_error(404, "NoSuchKey", "The specified key does not exist.")


def _model_file(task: Task) -> model_formats.ModelFile:
    if task.type == "convert_model":
        return model_formats.BY_FORMAT[_output_format(task.body)]
    return model_formats.GLB


def _model_file_name(task: Task) -> str:
    return f"model.{_model_file(task).extension}"
