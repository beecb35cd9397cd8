"""A model's conversions to other file formats: what makes two requests the same
conversion, and which earlier conversion can answer a new request instead of a new
(billed) one.

A conversion task's params are ``{SOURCE: the model's task id, SOURCE_PROVIDER_TASK: its
Tripo task id, "format": ..., and every option as the conversion runs with it}``: the
defaults are applied before recording, so a request that spells a default out and one
that leaves it out ask for the same conversion.
"""

from __future__ import annotations

import json

from .record import FAILED, Task

SOURCE = "model_task_id"
SOURCE_PROVIDER_TASK = "source_provider_task_id"


def fingerprint(params: dict) -> str:
    """The format and options of a conversion, the same for every request that asks for it."""
    asked = {name: value for name, value in params.items() if name not in (SOURCE, SOURCE_PROVIDER_TASK)}
    return json.dumps(asked, sort_keys=True, separators=(",", ":"))


def reusable(conversion: Task) -> bool:
    """Running or done: a new request gets this one. A failed one is asked for again."""
    return conversion.status != FAILED
