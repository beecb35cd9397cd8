"""Benchmark: what counting costs the code that counts, on a private Redis.

    .venv/bin/python scripts/metrics_overhead.py [--calls 200000] [--threads 1 4]

Prints the per-call cost of the buffered ``http_request`` (what each HTTP request pays,
from one thread and from several at once, as gthread workers do), of a counted provider
call (one round trip), what counting adds to a task's creation and end (no round trip of
its own: it rides on the store's transaction), and the time to render a scrape. Needs
redis-server on the PATH; touches no other Redis. Numbers, not assertions: compare them
on the same machine.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from bff.metrics import Metrics  # noqa: E402
from bff.redis_client import connection_options  # noqa: E402
from bff.tasks.queue import POLL_QUEUE, SUBMIT_QUEUE  # noqa: E402
from bff.tasks.record import COMPLETED, Kind, Service, Task  # noqa: E402
from bff.tasks.store import TaskStore  # noqa: E402
from tests.redis_server import PrivateRedis  # noqa: E402

ROUTES = ("tasks.task_status", "tasks.task_result", "generate.text_to_model", "generate.image_to_model",
          "health.healthz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    server = PrivateRedis()
    server.start()
    try:
        client = redis.Redis.from_url(server.url, **connection_options())
        metrics = Metrics(client, queues=(SUBMIT_QUEUE, POLL_QUEUE))
        for threads in args.threads:
            bench_http_request(metrics, args.calls, threads)
        bench_provider_request(metrics, 2_000)
        for label, counted in (("without metrics", None), ("with metrics", metrics)):
            store = TaskStore(client, retention_seconds=600, open_ttl_seconds=3600, metrics=counted)
            bench_task_lifetime(store, label, 2_000)
        bench_render(metrics, 200)
        metrics.close()
    finally:
        server.remove()


def bench_http_request(metrics: Metrics, calls: int, threads: int) -> None:
    """Buffered: the flusher thread runs meanwhile, as in production."""
    per_thread = calls // threads

    def answer_requests() -> None:
        for i in range(per_thread):
            metrics.http_request(ROUTES[i % len(ROUTES)], "GET", 200, 0.0042)

    workers = [threading.Thread(target=answer_requests) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    print(f"http_request (buffered), {threads} thread(s): {elapsed / (per_thread * threads) * 1e6:.2f} µs a call "
          f"({per_thread * threads} calls, wall time / calls)")


def bench_provider_request(metrics: Metrics, calls: int) -> None:
    started = time.perf_counter()
    for _ in range(calls):
        metrics.provider_request("tripo", "read", "ok", 0.35)
    print(f"provider_request (one round trip): {(time.perf_counter() - started) / calls * 1e6:.0f} µs a call")


def bench_task_lifetime(store: TaskStore, label: str, tasks: int) -> None:
    """A task created, then ended: the two store transactions that count it."""
    started = time.perf_counter()
    for _ in range(tasks):
        task = Task.new(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL, params={}, request_id="bench")
        store.create(task)
        store.update(task.id, lambda current: current.evolve(status=COMPLETED, progress=100))
    print(f"task created then ended, {label}: {(time.perf_counter() - started) / tasks * 1e6:.0f} µs a task")


def bench_render(metrics: Metrics, renders: int) -> None:
    started = time.perf_counter()
    for _ in range(renders):
        body, _ = metrics.render()
    print(f"render: {(time.perf_counter() - started) / renders * 1e3:.2f} ms a scrape ({len(body)} bytes)")


if __name__ == "__main__":
    main()
