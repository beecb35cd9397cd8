"""Reservations under contention in one process: with room for exactly five, exactly five
of twenty simultaneous creates are recorded, each on its own connection. (Two web
processes racing over HTTP: tests/processes/test_credits.py.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import redis

from bff.tasks.store import CreateRefused
from tests.credits.building import TEXTURED, USER, accept, credits_for, store_with, text_task


def test_twenty_simultaneous_creates_with_room_for_five_record_exactly_five(redis_client):
    url = "redis://{host}:{port}/0".format(**redis_client.connection_pool.connection_kwargs)
    start = threading.Barrier(20)

    def one(_) -> str | None:
        connection = redis.Redis.from_url(url)
        credits = credits_for(connection, bff_user_daily_credits=5 * TEXTURED)
        store = store_with(connection, credits)
        task = text_task()
        start.wait(timeout=30)
        try:
            return accept(store, credits, task).id
        except CreateRefused:
            return None

    with ThreadPoolExecutor(max_workers=20) as pool:
        accepted = [task_id for task_id in pool.map(one, range(20)) if task_id]

    assert len(accepted) == 5
    store = store_with(redis_client, credits_for(redis_client))
    assert sorted(store.open_task_ids()) == sorted(accepted)
    assert credits_for(redis_client).book.summary(USER, allowance=5 * TEXTURED)["reserved"] == 5 * TEXTURED
