"""Provider capacity: how many provider calls may be under way, the one place for those
limits.

Each task draws on one bucket:
- ``tripo:generation`` and ``tripo:refine`` count tasks *in flight* at Tripo (claimed or
  submitted, not yet seen finished), at most ``BFF_TRIPO_CONCURRENCY`` and
  ``BFF_TRIPO_REFINE_CONCURRENCY``. The "refine" bucket is Tripo's non-generation bucket:
  every task that works on an existing model (re-texture, convert), which Tripo counts
  together; it keeps its name in stored data and settings. A slot is held by the task
  record's own state, so it is freed by whatever ends the task (success, failure,
  deadline, reconciliation of a dead worker) and cannot leak.
- ``openai`` counts edits *started* in a rolling window, at most
  ``BFF_OPENAI_TASKS_PER_MINUTE`` per ``BFF_OPENAI_WINDOW_SECONDS``.

A task that finds no capacity waits in its bucket's queue, oldest first; the poll cycle
sends the oldest waiting tasks as capacity frees up. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from bff.settings import Settings

from .record import Kind, Service


@dataclass(frozen=True)
class Bucket:
    name: str
    limit: int
    window_seconds: float | None = None  # None: a concurrency limit; else a rolling window


TRIPO_GENERATION = "tripo:generation"
TRIPO_REFINE = "tripo:refine"
OPENAI_EDITS = str(Service.OPENAI)  # named before the "service:kind" form; kept for stored data
_NON_GENERATION_KINDS = frozenset({Kind.REFINE_MODEL, Kind.CONVERT_MODEL})
IN_FLIGHT_BUCKETS = frozenset({TRIPO_GENERATION, TRIPO_REFINE})
BUCKET_NAMES = (TRIPO_GENERATION, TRIPO_REFINE, OPENAI_EDITS)


def bucket_name(service: str, kind: str) -> str:
    if service == Service.OPENAI:
        if kind != Kind.IMAGE_TO_IMAGE:
            raise ValueError(f"no capacity bucket for openai {kind}")
        return OPENAI_EDITS
    return TRIPO_REFINE if kind in _NON_GENERATION_KINDS else TRIPO_GENERATION


def all_buckets(settings: Settings) -> list[Bucket]:
    return [
        Bucket(TRIPO_GENERATION, settings.bff_tripo_concurrency),
        Bucket(TRIPO_REFINE, settings.bff_tripo_refine_concurrency),
        Bucket(OPENAI_EDITS, settings.bff_openai_tasks_per_minute, settings.bff_openai_window_seconds),
    ]


def bucket_for(service: str, kind: str, settings: Settings) -> Bucket:
    name = bucket_name(service, kind)
    return next(bucket for bucket in all_buckets(settings) if bucket.name == name)
