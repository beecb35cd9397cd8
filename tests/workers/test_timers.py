"""Reconciliation's timers: kept with every write, so a poll cycle reads only the tasks a
rule may apply to; tasks waiting for capacity cost it nothing until they are dispatched."""

from __future__ import annotations

import math
import time

from bff.tasks import lifecycle
from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.record import CLAIMED, SUBMITTED, WAITING
from bff.tasks.store import TaskStore, task_key, timer_key
from tests.helpers import new_text_task, queued, reconcile_open_tasks, store_for
from workers.reconcile import NUDGE_AFTER_SECONDS, TIMERS_INDEX_SECONDS


def timers_of(store: TaskStore, task_id: str) -> set[str]:
    return {timer for timer in lifecycle.TIMERS if task_id in store.due_task_ids(timer, math.inf)}


def test_a_task_has_the_timers_of_its_state_only(redis_client):
    store = store_for(redis_client)
    task = new_text_task(redis_client)
    seen = [timers_of(store, task.id)]
    for state in (WAITING, CLAIMED, SUBMITTED):
        store.update(task.id, lambda current, state=state: current.evolve(submission=state, claimed_at=time.time()))
        seen.append(timers_of(store, task.id))
    store.update(task.id, lambda current: current.evolve(status="completed"))
    seen.append(timers_of(store, task.id))

    assert seen == [{"deadline", "nudge"}, set(), {"claim"}, {"deadline"}, set()]


def test_waiting_tasks_cost_a_cycle_nothing(redis_client, worker_runtime, monkeypatch):
    store = worker_runtime.store
    long_ago = time.time() - 10 * worker_runtime.settings.bff_task_deadline_seconds
    waiting = [new_text_task(redis_client, created_at=long_ago + n) for n in range(30)]
    for task in waiting:
        store.update(task.id, lambda current: current.evolve(submission=WAITING))
    for _ in range(worker_runtime.settings.bff_tripo_concurrency):  # the bucket is full
        in_flight = new_text_task(redis_client)
        store.update(in_flight.id, lambda current: current.evolve(submission=SUBMITTED, provider_task_id="t"))
    store.index_timers(TIMERS_INDEX_SECONDS)  # this hour's sweep is done
    read: list[str] = []
    real_get_many = store.get_many
    monkeypatch.setattr(store, "get_many", lambda ids: read.extend(ids) or real_get_many(ids))

    reconcile_open_tasks()

    assert not set(read) & {task.id for task in waiting}
    assert all(store.get(task.id).submission == WAITING for task in waiting)  # still queued, not timed out


def test_a_cycle_reads_a_task_once_a_rule_may_apply(redis_client, worker_runtime):
    store = worker_runtime.store
    store.index_timers(TIMERS_INDEX_SECONDS)
    fresh = new_text_task(redis_client)
    overdue = new_text_task(redis_client, created_at=time.time() - NUDGE_AFTER_SECONDS - 1)

    reconcile_open_tasks()

    assert queued(redis_client, SUBMIT_QUEUE) == 1  # the overdue one, nudged
    assert store.get(overdue.id).next_attempt_at and store.get(fresh.id).next_attempt_at is None


def test_the_hourly_sweep_gives_records_written_without_timers_theirs(redis_client, worker_runtime):
    store = worker_runtime.store
    task = new_text_task(redis_client, created_at=time.time() - NUDGE_AFTER_SECONDS - 1)
    for timer in lifecycle.TIMERS:
        redis_client.zrem(timer_key(timer), task.id)  # as a version before timers wrote it
    gone = new_text_task(redis_client)
    redis_client.delete(task_key(gone.id))

    reconcile_open_tasks()

    assert queued(redis_client, SUBMIT_QUEUE) == 1 and timers_of(store, task.id) == {"deadline", "nudge"}
    assert gone.id not in store.open_task_ids()
    for timer in lifecycle.TIMERS:
        redis_client.zrem(timer_key(timer), task.id)
    store.index_timers(TIMERS_INDEX_SECONDS)
    assert timers_of(store, task.id) == set()  # once an hour, across processes
