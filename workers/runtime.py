"""What the worker code needs, built once per worker process from the settings.

Actors read the process's runtime once, at their entry point, and hand it (or the parts
a function needs) down; nothing below them looks it up.
"""

from __future__ import annotations

from dataclasses import dataclass

from bff.metrics import Metrics
from bff.providers.openai import OpenAIClient
from bff.providers.tripo import TripoClient
from bff.results.object_store import ObjectStore
from bff.settings import Settings
from bff.tasks.queue import TaskQueue
from bff.tasks.services import Services
from bff.tasks.store import TaskStore

from .heartbeat import Heartbeat


@dataclass(frozen=True)
class WorkerRuntime:
    services: Services
    tripo: TripoClient
    openai: OpenAIClient
    heartbeat: Heartbeat

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> TaskStore:
        return self.services.store

    @property
    def queue(self) -> TaskQueue:
        return self.services.queue

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    @property
    def objects(self) -> ObjectStore | None:
        return self.services.objects

    @classmethod
    def build(cls, settings: Settings) -> WorkerRuntime:
        services = Services.build(settings)
        observe = services.metrics.provider_request  # every provider call is counted and timed
        return cls(
            services=services,
            tripo=TripoClient(settings.tripo_api_base_url, settings.tripo_api_key, observe=observe),
            openai=OpenAIClient(settings.openai_api_base_url, settings.openai_api_key, observe=observe),
            heartbeat=Heartbeat(services.redis),
        )


_current: WorkerRuntime | None = None


def install(runtime: WorkerRuntime) -> None:
    global _current
    _current = runtime


def current() -> WorkerRuntime:
    """For actors' entry points only."""
    if _current is None:
        raise RuntimeError("worker runtime not installed: import workers.actors (or workers.broker) first")
    return _current
