"""Code run in separate processes by the metrics tests (kept apart from conftest, which a
spawned process must not import: it would set up a test session of its own)."""

from __future__ import annotations

import redis

from bff.metrics import Metrics


def record_then_render(redis_url: str, requests: int, recorded, rendered) -> None:
    """A web process: answer ``requests`` requests, then (once every process has flushed)
    answer a scrape."""
    metrics = Metrics(redis.Redis.from_url(redis_url))
    for _ in range(requests):
        metrics.http_request("tasks.status", "GET", 200, 0.004)
    metrics.flush()
    recorded.wait()
    rendered.put(metrics.render()[0])
