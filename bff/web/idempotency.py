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
from typing import TYPE_CHECKING

import redis

from bff.tasks.record import Upload
from bff.tasks.store import Remembered

from .refusals import InFlight, InvalidInput

if TYPE_CHECKING:
    from .intake import Caller

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


def begin(client: redis.Redis, caller: Caller, params: dict, upload: Upload | None) -> tuple[Claim | None, dict | None]:
    """(claim to finish, None) for a first request; (None, stored answer) for a replay;
    (None, None) without a key. Raises a refusal when the key cannot be used."""
    key = caller.idempotency_key
    if key is None:
        return None, None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"{HEADER} must be 1..{MAX_KEY_LENGTH} printable characters.",
                           field_errors={"headers": {HEADER: ["Invalid key."]}})
    claim = Claim(_redis_key(caller.client, key), _fingerprint(caller.endpoint, params, upload))
    stored = _take_or_read(client, claim)
    if stored is None:
        return claim, None
    if stored.get("fingerprint") != claim.fingerprint:
        raise InvalidInput(f"This {HEADER} was used with a different request; use a new key for a new request.")
    if "answer" not in stored:
        raise InFlight(f"A request with this {HEADER} is still being handled; retry in a moment.", retry_after=1)
    return None, stored["answer"]


def _take_or_read(client: redis.Redis, claim: Claim) -> dict | None:
    """None when this request took the key; else what the key holds."""
    for _ in range(3):  # the key may vanish between the two calls (abandoned, expired)
        if client.set(claim.redis_key, json.dumps({"fingerprint": claim.fingerprint}), nx=True,
                      ex=IN_PROGRESS_SECONDS):
            return None
        raw = client.get(claim.redis_key)
        if raw is not None:
            return json.loads(raw)
    raise InFlight(f"A request with this {HEADER} is changing state; retry in a moment.", retry_after=1)


def answer_to_remember(claim: Claim, body: dict, location: str) -> Remembered:
    """The 202 of a new task, to store in the same transaction as the task itself."""
    value = json.dumps({"fingerprint": claim.fingerprint, "answer": {"body": body, "location": location}})
    return Remembered(claim.redis_key, value, KEEP_SECONDS)


def abandon(client: redis.Redis, claim: Claim) -> None:
    client.delete(claim.redis_key)


def _redis_key(caller_client: str, key: str) -> str:
    # Hashed: a client's keys are its own business, and bounded in size.
    digest = hashlib.sha256(f"{caller_client}\n{key}".encode()).hexdigest()
    return f"bff:idempotency:{digest}"


def _fingerprint(endpoint: str, params: dict, upload: Upload | None) -> str:
    material = {"endpoint": endpoint, "params": params,
                "upload": hashlib.sha256(upload.data).hexdigest() if upload else None}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
