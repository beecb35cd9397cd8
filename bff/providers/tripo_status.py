"""How a Tripo task read becomes a BFF task: the one place that maps provider statuses.

queued -> pending, running -> processing (with Tripo's progress), success -> completed
(progress 100), failed/cancelled/banned/expired -> failed with a stable error code.
Anything else (``unknown`` or a value Tripo adds later) counts as still running; the task
deadline bounds it. Each read is parsed once, here, into a ``TripoSnapshot``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlparse

from bff.tasks.error_codes import task_error
from bff.tasks.model_formats import format_of_path
from bff.tasks.record import COMPLETED, FAILED, MODEL, PENDING, PREVIEW, PROCESSING, TaskError

_FAILURE_CODES = {
    "failed": "provider_failed",
    "cancelled": "provider_cancelled",
    "banned": "content_policy",
    "expired": "provider_expired",
}

# Output field names, by preference.
_MODEL_KEYS = ("model_url", "pbr_model", "model", "base_model")
_PREVIEW_KEYS = ("rendered_image_url", "rendered_image")


@dataclass(frozen=True)
class TripoSnapshot:
    """A normalised read of one Tripo task."""

    status: str
    progress: int
    model_url: str | None = None
    preview_url: str | None = None
    error: TaskError | None = None
    provider_error_code: str | None = None
    # What Tripo says the task cost (``credits_consumed``), read only when it has ended:
    # a running task's figure is not what it is billed.
    credits_consumed: float | None = None

    @property
    def urls(self) -> dict[str, str]:
        """The signed output URLs of a completed read, by output key (short-lived)."""
        return {key: url for key, url in ((MODEL, self.model_url), (PREVIEW, self.preview_url)) if url}

    @property
    def outputs(self) -> dict:
        """What the task record keeps of the outputs (never the short-lived URLs)."""
        outputs = {}
        if self.model_url:
            outputs[MODEL] = format_of_path(urlparse(self.model_url).path)
        if self.preview_url:
            outputs[PREVIEW] = "png"
        return outputs


def snapshot_from_tripo(task: dict) -> TripoSnapshot:
    status = str(task.get("status") or "unknown").lower()
    progress = _progress(task.get("progress"))
    if status == "queued":
        return TripoSnapshot(PENDING, 0)
    if status == "success":
        return _completed(task.get("output"), _credits(task.get("credits_consumed")))
    if status in _FAILURE_CODES:
        return _failed(status, task)
    return TripoSnapshot(PROCESSING, min(progress, 99))


def _completed(output, credits_consumed: float | None) -> TripoSnapshot:
    output = output if isinstance(output, dict) else {}
    # providers.md: prefer model_url; older names may appear.
    model_url, preview_url = _first_url(output, _MODEL_KEYS), _first_url(output, _PREVIEW_KEYS)
    if not model_url:
        return TripoSnapshot(FAILED, 100, error=task_error("provider_failed", "success without a model"),
                             credits_consumed=credits_consumed)
    return TripoSnapshot(COMPLETED, 100, model_url=model_url, preview_url=preview_url,
                         credits_consumed=credits_consumed)


def _failed(status: str, task: dict) -> TripoSnapshot:
    provider_code = task.get("error_code")
    detail = task.get("error_message") or f"Tripo status {status}"
    return TripoSnapshot(
        FAILED,
        _progress(task.get("progress")),
        error=task_error(_FAILURE_CODES[status], str(detail)[:300]),
        provider_error_code=None if provider_code is None else str(provider_code),
        credits_consumed=_credits(task.get("credits_consumed")),
    )


def _credits(value) -> float | None:
    """Tripo's ``credits_consumed`` (a decimal, as a number or a string); None when absent or unreadable."""
    if isinstance(value, bool):
        return None
    try:
        credits = float(value)
    except (TypeError, ValueError):
        return None
    return credits if math.isfinite(credits) and credits >= 0 else None


def _first_url(output: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = output.get(key)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    return None


def _progress(value) -> int:
    try:
        return max(0, min(100, int(value)))
    except (TypeError, ValueError):
        return 0
