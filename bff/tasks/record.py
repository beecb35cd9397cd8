"""The task record and its vocabulary: what the BFF knows about one generation request.

This is the one home of the words a task is made of: its services, kinds, statuses,
submission states and output keys. The record in Redis is the source of truth for a
task; Dramatiq messages only nudge it forward. The status route serves a view of this
record and never asks a provider.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum


class Service(StrEnum):
    """The provider a task runs at."""

    TRIPO = "tripo"
    OPENAI = "openai"


class Kind(StrEnum):
    """What a task makes."""

    TEXT_TO_MODEL = "text_to_model"
    SKETCH_TO_MODEL = "sketch_to_model"
    IMAGE_TO_MODEL = "image_to_model"
    REFINE_MODEL = "refine_model"
    CONVERT_MODEL = "convert_model"  # the model of another task, as a file of another format
    IMAGE_TO_IMAGE = "image_to_image"


# Kinds whose result is a 3D model that Tripo can work on further (refine, convert). A
# conversion's file is an end product: Tripo converts or re-textures a model task only.
MODEL_KINDS = frozenset({Kind.TEXT_TO_MODEL, Kind.SKETCH_TO_MODEL, Kind.IMAGE_TO_MODEL, Kind.REFINE_MODEL})

# The four statuses a client ever sees.
PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED})

# Where the task is in its hand-over to the provider. "claimed" means a worker has taken
# the right to send the create call; nobody else may send it (no double billing).
# bff.tasks.lifecycle holds the transitions between these states.
NOT_SUBMITTED = "not_submitted"
WAITING = "waiting"  # for provider capacity, in its bucket's queue (see bff.tasks.capacity)
CLAIMED = "claimed"
SUBMITTED = "submitted"
# The provider is done and its result paid for: with object storage configured, the files
# are being kept in the bucket; the task completes only once they all are (processing, 99).
STORING = "storing"

# Keys of ``Task.outputs``: a model task keeps {MODEL: its file format (a name of
# bff.tasks.model_formats: "glb", "usdz", "stl", "zip"...), PREVIEW: "png"}; an
# image task {IMAGES: count, IMAGE_FORMAT: "PNG"|"JPEG"|"WEBP"}. Never a provider URL.
MODEL = "model"
PREVIEW = "preview"
IMAGES = "images"
IMAGE_FORMAT = "image_format"
# Keys of ``Task.object_keys`` (where the task's files are in object storage): MODEL and
# PREVIEW (one key each), IMAGES (a list of keys, in order) and UPLOAD (the input image).
UPLOAD = "upload"


def new_task_id() -> str:
    """Opaque and unguessable: 144 random bits, URL-safe."""
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True)
class Task:
    id: str
    service: str
    kind: str
    params: dict
    request_id: str
    created_at: float
    updated_at: float
    client: str = ""  # who created it: only that client may see it
    status: str = PENDING
    progress: int = 0
    submission: str = NOT_SUBMITTED
    claimed_at: float | None = None
    claimed_by: str | None = None  # the claiming worker process's heartbeat id
    sending_at: float | None = None  # recorded just before the provider call leaves
    next_attempt_at: float | None = None  # when it is due to be sent, or stored, again (the nudge timer's start)
    deadline_from: float | None = None  # when it left the capacity queue or began storing; else created_at
    submit_tries: int = 0  # create calls that failed and were retried, for the backoff
    submit_faults: int = 0  # of those, the ones that were faults rather than a 429
    provider_task_id: str | None = None
    submitted_at: float | None = None
    outputs: dict = field(default_factory=dict)
    object_keys: dict = field(default_factory=dict)  # by output key (and UPLOAD); never shown to a client
    store_tries: int = 0  # attempts to store the results that failed and were retried
    error: TaskError | None = None
    provider_error_code: str | None = None
    provider_request_id: str | None = None
    # Credits held for the task from its acceptance to its end ({"user", "day", "price", "service"}:
    # bff.credits.book.Reservation), and what the provider reported the task cost.
    reservation: dict | None = None
    credits_consumed: float | None = None

    @classmethod
    def new(cls, *, service: str, kind: str, params: dict, request_id: str, client: str = "") -> Task:
        now = time.time()
        return cls(
            id=new_task_id(),
            service=service,
            kind=kind,
            params=params,
            request_id=request_id,
            created_at=now,
            updated_at=now,
            client=client,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_model(self) -> bool:
        return self.service == Service.TRIPO and self.kind in MODEL_KINDS

    def evolve(self, **changes) -> Task:
        return replace(self, updated_at=time.time(), **changes)

    def failed(self, error: TaskError, **changes) -> Task:
        return self.evolve(status=FAILED, error=error, **changes)

    def to_json(self) -> str:
        # Not ``asdict``: it deep-copies every dict on the way (39 µs a record against 8 µs;
        # records are written on every change). The fields are JSON values, but for the error.
        data = dict(self.__dict__)
        if self.error is not None:
            data["error"] = {"code": self.error.code, "message": self.error.message}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Task:
        data = json.loads(raw)
        # Fields this version does not know (written by a newer one during a rolling
        # deploy) are dropped, not fatal.
        known = {f.name for f in fields(cls)}
        data = {key: value for key, value in data.items() if key in known}
        error = data.pop("error", None)
        return cls(**data, error=TaskError(**error) if error else None)


@dataclass(frozen=True)
class Upload:
    """An input image uploaded with a task, kept until the task ends."""

    data: bytes
    content_type: str
    filename: str

    def as_mapping(self) -> dict[str, bytes | str]:
        return {"data": self.data, "content_type": self.content_type, "filename": self.filename}

    @classmethod
    def from_mapping(cls, fields: dict) -> Upload:
        text = {key.decode() if isinstance(key, bytes) else key: value for key, value in fields.items()}
        return cls(data=text["data"], content_type=text["content_type"].decode(), filename=text["filename"].decode())
