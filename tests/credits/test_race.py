"""Reservations under contention: with room for exactly 5, exactly 5 of 20 callers win,
whether they race as threads or as separate processes with their own connections."""

from __future__ import annotations

import multiprocessing

from bff.credits import CreditBook
from tests.credits.race import PRICE, process_main, reserve_all


def _url(redis_client) -> str:
    options = redis_client.connection_pool.connection_kwargs
    return f"redis://{options['host']}:{options['port']}/{options.get('db', 0)}"


def test_twenty_threads_of_one_user_get_exactly_the_five_the_allowance_holds(redis_client):
    calls = [("alice", f"task-{index}") for index in range(20)]

    accepted = reserve_all(_url(redis_client), calls, allowance=5 * PRICE, service_budget=None)

    assert len(accepted) == 5
    book = CreditBook(redis_client)
    assert book.summary("alice", allowance=5 * PRICE)["reserved"] == 5 * PRICE
    assert book.service_totals(1)[0]["reserved"] == 5 * PRICE
    assert len(book.user_history("alice", 1)[0]["entries"]) == 5
    # Only the winners' writes happened.
    assert sorted(key.decode() for key in redis_client.keys("test:task:*")) == sorted(
        f"test:task:{task_id}" for task_id in accepted)


def test_twenty_callers_in_two_processes_get_exactly_the_five_the_service_budget_holds(redis_client):
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=process_main, args=(
            _url(redis_client), [(f"user-{part}-{index}", f"task-{part}-{index}") for index in range(10)],
            5 * PRICE, start, results))
        for part in range(2)
    ]
    for process in processes:
        process.start()
    accepted = results.get(timeout=60) + results.get(timeout=60)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert len(accepted) == 5
    totals = CreditBook(redis_client).service_totals(1)[0]
    assert totals["reserved"] == 5 * PRICE
    assert len(redis_client.keys("test:task:*")) == 5
    assert len(redis_client.keys("bff:credits:task:*")) == 5
