"""Capped exponential backoff with full jitter, honouring a provider's Retry-After."""

from __future__ import annotations

import random

BASE_SECONDS = 2.0
CAP_SECONDS = 120.0


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based)."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)
