"""What both roles need to work on tasks (Redis, the task store, the queue, the metrics, the
credits, the bucket when object storage is configured), built once per process."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from dramatiq.brokers.redis import RedisBroker

from bff.credits.book import ADMISSION_CHECK, CreditBook
from bff.credits.credits import Credits
from bff.metrics import Metrics
from bff.redis_client import build_redis
from bff.results.object_store import ObjectStore
from bff.settings import Settings
from bff.tasks.queue import POLL_QUEUE, STORE_QUEUE, SUBMIT_QUEUE, TaskQueue
from bff.tasks.store import TaskStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    store: TaskStore
    queue: TaskQueue
    metrics: Metrics
    credits: Credits
    objects: ObjectStore | None = None  # None: BFF_STORAGE_URL unset, results stay in Redis / at the provider

    @classmethod
    def build(cls, settings: Settings, *, max_redis_connections: int | None = None) -> Services:
        client = build_redis(settings.redis_url, verify_tls=settings.redis_tls_verify,
                             max_connections=max_redis_connections)
        metrics = Metrics(client, queues=(SUBMIT_QUEUE, POLL_QUEUE, STORE_QUEUE))
        credits = Credits(settings, CreditBook(client, ledger_days=settings.bff_ledger_days, metrics=metrics))
        return cls(
            settings=settings,
            redis=client,
            store=TaskStore(
                client,
                retention_seconds=settings.bff_result_ttl_seconds,
                open_ttl_seconds=settings.bff_task_deadline_seconds + settings.bff_result_ttl_seconds,
                metrics=metrics,
                # Credits are reserved by the script that records a task, and released by
                # the transaction that ends it.
                admission_check=ADMISSION_CHECK,
                end_commands=credits.end_commands,
            ),
            # This broker only enqueues (the worker role declares its own), so it needs no middleware.
            queue=TaskQueue(RedisBroker(client=client, middleware=[])),
            metrics=metrics,
            credits=credits,
            objects=_object_store(settings),
        )


def _object_store(settings: Settings) -> ObjectStore | None:
    if settings.bff_storage_url is None:
        return None
    # No request here: the clients are built on first use, so a storage outage never stops a start.
    return ObjectStore(
        settings.bff_storage_url, endpoint_url=settings.bff_s3_endpoint_url, region=settings.aws_region,
        addressing_style=settings.bff_s3_addressing_style, access_key_id=settings.aws_access_key_id,
        secret_access_key=settings.aws_secret_access_key, link_seconds=settings.bff_storage_link_seconds,
    )
