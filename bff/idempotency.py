"""Idempotency keys: a retried POST /generate/* gets the first answer back, not a second
(billed) task.

Per client and key, Redis holds the request's fingerprint and, once the first request
has been answered, its 202 body. The same key then replays that answer for 24 hours
(``Idempotent-Replayed: true``); with a different request it is a 422; while the first
request is still being handled, a 409. A request that fails before answering 202 frees
its key, so the client can retry with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from flask import request
from flask_smorest import abort

from .clients import current_client
from .services import services
from .task import Task, Upload
from .task_store import Remembered
from .task_view import accepted_body, status_url

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEEP_SECONDS = 24 * 3600
# Long enough for any intake; a key stuck "in progress" by a crashed process frees itself.
IN_PROGRESS_SECONDS = 60

HEADER_DOC = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH},
    "description": "Makes a retry safe: the same key with the same request within 24 h returns the first "
    "answer (same task_id, `Idempotent-Replayed: true`) instead of a new task. Use a new random key (a UUID) "
    "per user action.",
}


@dataclass(frozen=True)
class Claim:
    redis_key: str
    fingerprint: str


def begin(params: dict, upload: Upload | None) -> tuple[Claim | None, dict | None]:
    """(claim to finish, None) for a first request; (None, stored answer) for a replay;
    (None, None) without a key. Aborts with 409/422 when the key cannot be used."""
    key = request.headers.get(HEADER)
    if key is None:
        return None, None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        abort(422, message=f"{HEADER} must be 1..{MAX_KEY_LENGTH} printable characters.",
              errors={"headers": {HEADER: ["Invalid key."]}})
    claim = Claim(_redis_key(key), _fingerprint(params, upload))
    stored = _take_or_read(claim)
    if stored is None:
        return claim, None
    if stored.get("fingerprint") != claim.fingerprint:
        abort(422, message=f"This {HEADER} was used with a different request; use a new key for a new request.")
    if "answer" not in stored:
        abort(409, message=f"A request with this {HEADER} is still being handled; retry in a moment.",
              headers={"Retry-After": "1"})
    return None, stored["answer"]


def _take_or_read(claim: Claim) -> dict | None:
    """None when this request took the key; else what the key holds."""
    client = services().redis
    for _ in range(3):  # the key may vanish between the two calls (abandoned, expired)
        if client.set(claim.redis_key, json.dumps({"fingerprint": claim.fingerprint}), nx=True,
                      ex=IN_PROGRESS_SECONDS):
            return None
        raw = client.get(claim.redis_key)
        if raw is not None:
            return json.loads(raw)
    abort(409, message=f"A request with this {HEADER} is changing state; retry in a moment.",
          headers={"Retry-After": "1"})


def answer_to_remember(claim: Claim, task: Task) -> Remembered:
    """The 202 of a new task, to store in the same transaction as the task itself."""
    answer = {"body": accepted_body(task), "location": status_url(task)}
    value = json.dumps({"fingerprint": claim.fingerprint, "answer": answer})
    return Remembered(claim.redis_key, value, KEEP_SECONDS)


def abandon(claim: Claim) -> None:
    services().redis.delete(claim.redis_key)


def _redis_key(key: str) -> str:
    # Hashed: a client's keys are its own business, and bounded in size.
    digest = hashlib.sha256(f"{current_client()}\n{key}".encode()).hexdigest()
    return f"bff:idempotency:{digest}"


def _fingerprint(params: dict, upload: Upload | None) -> str:
    material = {"endpoint": request.endpoint, "params": params,
                "upload": hashlib.sha256(upload.data).hexdigest() if upload else None}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
