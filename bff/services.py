"""What the web process needs to serve a request, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from dramatiq.brokers.redis import RedisBroker
from flask import current_app

from .queue import TaskQueue
from .redis_client import build_redis
from .settings import Settings
from .task_store import TaskStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    store: TaskStore
    queue: TaskQueue

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        client = build_redis(settings.redis_url, verify_tls=settings.redis_tls_verify)
        return cls(
            settings=settings,
            redis=client,
            store=TaskStore(
                client,
                retention_seconds=settings.bff_result_ttl_seconds,
                open_ttl_seconds=settings.bff_task_deadline_seconds + settings.bff_result_ttl_seconds,
            ),
            # The web side only enqueues, so its broker needs no middleware.
            queue=TaskQueue(RedisBroker(client=client, middleware=[])),
        )


def services() -> Services:
    return current_app.extensions["bff"]
