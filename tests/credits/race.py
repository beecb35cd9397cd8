"""Concurrent reserve() calls, run in threads of this process or of a spawned one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import redis

from bff.credits import CreditBook

PRICE = 10


def reserve_all(redis_url: str, calls: list[tuple[str, str]], *, allowance: int | None,
                service_budget: int | None, start: threading.Barrier | None = None) -> list[str]:
    """Reserve PRICE for each (user, task_id) at once, each call on its own thread and
    connection; the task ids that were accepted. ``start`` (shared with other processes)
    lines the callers up first."""
    book = CreditBook(redis.Redis.from_url(redis_url))
    all_threads = threading.Barrier(len(calls))
    if start is not None:
        start.wait(timeout=60)

    def one(call: tuple[str, str]) -> str | None:
        user, task_id = call
        all_threads.wait(timeout=30)
        result = book.reserve(user, task_id, PRICE, allowance=allowance, service_budget=service_budget,
                              writes=[["SET", f"test:task:{task_id}", "record", "NX"]])
        return task_id if result.accepted else None

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [task_id for task_id in pool.map(one, calls) if task_id]


def process_main(redis_url: str, calls: list[tuple[str, str]], service_budget: int, start, results) -> None:
    results.put(reserve_all(redis_url, calls, allowance=None, service_budget=service_budget, start=start))
