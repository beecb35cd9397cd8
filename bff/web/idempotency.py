"""Idempotency keys: a retried POST /generate/* gets the first answer back, not a second
(billed) task.

Per client and key, Redis holds the first request's fingerprint and its 202 body, written
by the script that records the task (``bff.tasks.store``), which first looks at the key:
taken, it records nothing and hands back what the key holds. The same key then replays
that answer for 24 hours (``Idempotent-Replayed: true``); with a different request it is
a 422. Two requests with one key at the same moment make one task, and both get its 202.
A request that records nothing leaves the key free, so the client can retry with it.
The key costs no round trip of its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bff.tasks.record import Upload
from bff.tasks.store import Remembered

from .refusals import InFlight, InvalidInput

if TYPE_CHECKING:
    from .intake import Caller

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEEP_SECONDS = 24 * 3600

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


def claim_for(caller: Caller, params: dict, upload: Upload | None) -> Claim | None:
    """The key this request would take (None without one). Raises a refusal when the key
    cannot be used."""
    key = caller.idempotency_key
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"{HEADER} must be 1..{MAX_KEY_LENGTH} printable characters.",
                           field_errors={"headers": {HEADER: ["Invalid key."]}})
    return Claim(_redis_key(caller.client, key), _fingerprint(caller.endpoint, params, upload))


def replay(claim: Claim, held: bytes | str) -> dict:
    """The stored answer to replay for ``claim``, from what its key holds. Raises a
    refusal when the key was used with another request."""
    stored = json.loads(held)
    if stored.get("fingerprint") != claim.fingerprint:
        raise InvalidInput(f"This {HEADER} was used with a different request; use a new key for a new request.")
    if "answer" not in stored:
        # Left by a version that marked keys in progress (a rolling deploy): gone within a minute.
        raise InFlight(f"A request with this {HEADER} is still being handled; retry in a moment.", retry_after=1)
    return stored["answer"]


def answer_to_remember(claim: Claim, body: dict, location: str) -> Remembered:
    """The 202 of a new task, to store in the same transaction as the task itself."""
    value = json.dumps({"fingerprint": claim.fingerprint, "answer": {"body": body, "location": location}})
    return Remembered(claim.redis_key, value, KEEP_SECONDS)


def _redis_key(caller_client: str, key: str) -> str:
    # Hashed: a client's keys are its own business, and bounded in size.
    digest = hashlib.sha256(f"{caller_client}\n{key}".encode()).hexdigest()
    return f"bff:idempotency:{digest}"


def _fingerprint(endpoint: str, params: dict, upload: Upload | None) -> str:
    material = {"endpoint": endpoint, "params": params,
                "upload": hashlib.sha256(upload.data).hexdigest() if upload else None}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
