"""The task store counts tasks created and ended on its own transactions: each task once,
however often a change is retried or repeated; and it reads every bucket's queue in one go."""

from __future__ import annotations

import dataclasses

import pytest

from bff.metrics import Metrics
from bff.tasks.capacity import OPENAI_EDITS, TRIPO_GENERATION, TRIPO_REFINE, all_buckets
from bff.tasks.record import COMPLETED, FAILED, PROCESSING, Kind, Service, Task, TaskError
from bff.tasks.store import TaskStore, task_key
from tests.helpers import submit
from tests.scrapes import labels, of, parse
from workers import runtime

TEXT_TO_MODEL = labels(service="tripo", kind="text_to_model")


@pytest.fixture
def metrics(redis_client):
    return Metrics(redis_client)


@pytest.fixture
def store(redis_client, metrics):
    return TaskStore(redis_client, retention_seconds=600, open_ttl_seconds=3600, metrics=metrics)


def new_task(store: TaskStore) -> Task:
    task = Task.new(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL,
                    params={"prompt": "a fox", "style": None, "texture": True}, request_id="req")
    store.create(task)
    return task


def counts(metrics: Metrics, name: str) -> dict:
    return of(parse(metrics.render()[0]), name)


def test_a_created_task_is_counted_with_its_record(store, metrics):
    new_task(store)
    new_task(store)

    assert counts(metrics, "bff_tasks_created_total") == {TEXT_TO_MODEL: 2}


def test_a_task_is_counted_when_it_ends_and_never_again(store, metrics):
    task = new_task(store)
    store.update(task.id, lambda current: current.evolve(status=PROCESSING, progress=40))
    assert counts(metrics, "bff_tasks_finished_total") == {}  # open changes count nothing

    store.update(task.id, lambda current: current.evolve(status=COMPLETED, progress=100))
    # A repeated message, or reconciliation, finding the task ended writes nothing.
    store.update(task.id, lambda current: current.failed(TaskError("timeout", "late")))

    assert counts(metrics, "bff_tasks_finished_total") == {
        labels(service="tripo", kind="text_to_model", status="completed", error_code=""): 1}
    assert counts(metrics, "bff_task_duration_seconds_count") == {TEXT_TO_MODEL: 1}


def test_an_end_retried_after_a_conflict_is_counted_once(store, metrics, redis_client):
    task = new_task(store)
    record = redis_client.get(task_key(task.id))
    attempts = []

    def fail_once_overtaken(current: Task) -> Task:
        attempts.append(current)
        if len(attempts) == 1:
            redis_client.set(task_key(task.id), record)  # another writer gets in first, once
        return current.failed(TaskError("provider_failed", "no"))

    store.update(task.id, fail_once_overtaken)

    assert len(attempts) == 2
    assert counts(metrics, "bff_tasks_finished_total") == {
        labels(service="tripo", kind="text_to_model", status=FAILED, error_code="provider_failed"): 1}


def test_the_duration_runs_from_creation_to_the_end(store, metrics):
    task = new_task(store)

    store.update(task.id, lambda current: dataclasses.replace(current, status=COMPLETED,
                                                              updated_at=current.created_at + 95))

    assert counts(metrics, "bff_task_duration_seconds_sum") == {TEXT_TO_MODEL: pytest.approx(95)}
    assert counts(metrics, "bff_task_duration_seconds_bucket")[labels(**dict(TEXT_TO_MODEL), le="90.0")] == 0
    assert counts(metrics, "bff_task_duration_seconds_bucket")[labels(**dict(TEXT_TO_MODEL), le="120.0")] == 1


def test_capacity_counts_give_every_bucket_waiting_and_in_use(redis_client, worker_runtime, tripo):
    settings = dataclasses.replace(worker_runtime.settings, bff_tripo_concurrency=2)
    runtime.install(runtime.WorkerRuntime.build(settings))
    store = runtime.current().store
    for _ in range(5):
        created = new_task(store)
        submit(created.id)

    assert store.capacity_counts(all_buckets(settings)) == {
        TRIPO_GENERATION: (3, 2), TRIPO_REFINE: (0, 0), OPENAI_EDITS: (0, 0)}
