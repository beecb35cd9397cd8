"""Benchmark: what intake and polling cost, on a private Redis and the Tripo stand-in.

    .venv/bin/python scripts/benchmark.py [--requests 500] [--active 100 1000]

Prints the latency of POST /generate/text-to-model through the real app (validation,
task record, message), and the duration of one poll cycle (reconciliation plus batched
Tripo reads) with N tasks in flight. Needs redis-server on the PATH; touches no other
Redis. Numbers, not assertions: compare them between versions on the same machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox.server import serve_in_thread  # noqa: E402
from sandbox.tripo import create_tripo_app  # noqa: E402
from tests.redis_server import PrivateRedis  # noqa: E402

TRIPO_KEY = "tsk_benchmark_key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--active", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    redis_server = PrivateRedis()
    redis_server.start()
    stand_in = serve_in_thread(create_tripo_app(api_key=TRIPO_KEY, task_seconds=3600))
    os.environ.update(REDIS_URL=redis_server.url, TRIPO_API_KEY=TRIPO_KEY, OPENAI_API_KEY="sk-benchmark",
                      TRIPO_API_BASE_URL=f"{stand_in.base_url}/v3", BFF_LOG_LEVEL="WARNING",
                      BFF_TRIPO_OTHER_REQUESTS_PER_MINUTE="1000000", BFF_TRIPO_CONCURRENCY="1000000")
    try:
        bench_intake(args.requests)
        for active in args.active:
            bench_poll_cycle(active)
    finally:
        stand_in.shutdown()
        redis_server.remove()


def bench_intake(count: int) -> None:
    from bff.settings import Settings
    from bff.web import create_app

    client = create_app(Settings.from_env()).test_client()
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        response = client.post("/generate/text-to-model", json={"prompt": f"benchmark model {i}", "style": "toy"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 202, response.get_json()
    _report(f"intake: {count} POST /generate/text-to-model", latencies)


def bench_poll_cycle(active: int) -> None:
    import redis

    import workers.actors  # noqa: F401  (sets up the worker runtime)
    from tests.helpers import new_text_task
    from workers import runtime
    from workers.polling import poll_cycle
    from workers.submission import submit

    worker_runtime = runtime.current()

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.flushdb()
    for _ in range(active):
        submit(worker_runtime, new_text_task(client).id)
    durations = []
    for _ in range(5):
        started = time.perf_counter()
        poll_cycle(worker_runtime)
        durations.append((time.perf_counter() - started) * 1000)
    _report(f"poll cycle: {active} tasks in flight ({-(-active // 100)} batch reads each)", durations)


def _report(title: str, milliseconds: list[float]) -> None:
    ordered = sorted(milliseconds)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(f"{title}\n  median {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms, max {ordered[-1]:.2f} ms")


if __name__ == "__main__":
    main()
