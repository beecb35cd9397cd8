"""The poll cycle: batched reads of active tasks only, status mapping into the record,
lost tasks, the deadline, and the scheduler's one tick per interval."""

from __future__ import annotations

import time

import pytest

from bff.tasks.record import Task
from bff.tasks.store import task_key
from tests.conftest import TRIPO_BASE_URL
from tests.helpers import new_text_task, poll_cycle, store_for, submit
from workers.scheduler import LEASE_KEY, PollScheduler


def submitted_task(redis_client, tripo) -> Task:
    task = new_text_task(redis_client)
    submit(task.id)
    return store_for(redis_client).get(task.id)


def test_no_active_task_costs_no_provider_call(redis_client, worker_runtime, tripo):
    new_text_task(redis_client)  # pending, not yet submitted

    poll_cycle()

    assert tripo.list_calls() == []


def test_active_tasks_are_read_in_batches_of_at_most_100(redis_client, worker_runtime, tripo):
    import dataclasses

    from workers import runtime

    roomy = dataclasses.replace(worker_runtime.settings, bff_tripo_concurrency=200)
    runtime.install(runtime.WorkerRuntime.build(roomy))
    tasks = [submitted_task(redis_client, tripo) for _ in range(150)]

    poll_cycle()

    batches = tripo.list_calls()
    assert [len(batch) for batch in batches] == [100, 50]
    assert sorted(sum(batches, [])) == sorted(task.provider_task_id for task in tasks)


def test_finished_tasks_drop_out_of_polling(redis_client, worker_runtime, tripo):
    done, running = submitted_task(redis_client, tripo), submitted_task(redis_client, tripo)
    tripo.succeed(done.provider_task_id)
    poll_cycle()

    poll_cycle()

    assert tripo.list_calls()[-1] == [running.provider_task_id]


@pytest.mark.parametrize("tripo_status, progress, expected_status, expected_progress", [
    ("queued", 0, "pending", 0),
    ("running", 42, "processing", 42),
    ("unknown", 10, "processing", 10),
    ("some_new_state", 10, "processing", 10),
])
def test_open_statuses_map_to_pending_or_processing(redis_client, worker_runtime, tripo, tripo_status, progress,
                                                    expected_status, expected_progress):
    task = submitted_task(redis_client, tripo)
    tripo.set_task(task.provider_task_id, tripo_status, progress)

    poll_cycle()

    polled = store_for(redis_client).get(task.id)
    assert (polled.status, polled.progress) == (expected_status, expected_progress)


def test_success_completes_with_progress_100_and_caches_fresh_urls(redis_client, worker_runtime, tripo):
    task = submitted_task(redis_client, tripo)
    tripo.succeed(task.provider_task_id)

    poll_cycle()

    store = store_for(redis_client)
    completed = store.get(task.id)
    assert (completed.status, completed.progress) == ("completed", 100)
    assert completed.outputs == {"model": "glb", "preview": "png"}
    urls = store.cached_output_urls(task.id)
    assert urls["model"].startswith(f"https://tripo-data.test/{task.provider_task_id}/model.glb?")
    ttl_ms = redis_client.pttl(task_key(task.id, "urls"))
    assert 0 < ttl_ms <= worker_runtime.settings.tripo_url_cache_seconds * 1000
    assert "tripo-data.test" not in redis_client.get(task_key(task.id)).decode()


def test_each_tripo_read_is_parsed_once(redis_client, worker_runtime, tripo, monkeypatch):
    import bff.providers.tripo_status
    import workers.polling

    parsed = []
    real_parse = bff.providers.tripo_status.snapshot_from_tripo

    def counting_parse(read):
        parsed.append(read["task_id"])
        return real_parse(read)

    monkeypatch.setattr(workers.polling, "snapshot_from_tripo", counting_parse)
    task = submitted_task(redis_client, tripo)
    tripo.succeed(task.provider_task_id)

    poll_cycle()

    assert store_for(redis_client).get(task.id).status == "completed"
    assert store_for(redis_client).cached_output_urls(task.id)["model"]
    assert parsed == [task.provider_task_id]


def test_success_with_only_legacy_output_names_still_completes(redis_client, worker_runtime, tripo):
    task = submitted_task(redis_client, tripo)
    tripo.succeed(task.provider_task_id, pbr_model="https://tripo-data.test/x/model.fbx?sig=1")

    poll_cycle()

    completed = store_for(redis_client).get(task.id)
    assert completed.status == "completed" and completed.outputs == {"model": "fbx"}


def test_success_without_a_model_is_a_failure_not_a_completed_task(redis_client, worker_runtime, tripo):
    task = submitted_task(redis_client, tripo)
    tripo.set_task(task.provider_task_id, "success", 100, output={})

    poll_cycle()

    assert store_for(redis_client).get(task.id).error.code == "provider_failed"


@pytest.mark.parametrize("tripo_status, code", [
    ("failed", "provider_failed"),
    ("cancelled", "provider_cancelled"),
    ("banned", "content_policy"),
    ("expired", "provider_expired"),
])
def test_terminal_failures_map_to_stable_codes_keeping_tripos_code(redis_client, worker_runtime, tripo, tripo_status,
                                                                    code):
    task = submitted_task(redis_client, tripo)
    tripo.set_task(task.provider_task_id, tripo_status, 30, error_code=2008, error_message="flagged")

    poll_cycle()

    failed = store_for(redis_client).get(task.id)
    assert (failed.status, failed.error.code, failed.provider_error_code) == ("failed", code, "2008")
    assert "flagged" in failed.error.message


def test_a_task_tripo_no_longer_knows_fails_as_lost(redis_client, worker_runtime, tripo):
    task = submitted_task(redis_client, tripo)
    del tripo.tasks[task.provider_task_id]

    poll_cycle()

    assert store_for(redis_client).get(task.id).error.code == "provider_task_lost"


def test_a_failed_batch_read_changes_nothing_and_is_retried_next_cycle(redis_client, worker_runtime, tripo,
                                                                        requests_mock):
    task = submitted_task(redis_client, tripo)
    requests_mock.post(f"{TRIPO_BASE_URL}/tasks/list", status_code=503, json={"code": 1000, "message": "busy"})

    poll_cycle()

    assert store_for(redis_client).get(task.id).status == "pending"


def test_tasks_past_the_deadline_fail_with_timeout_and_leave_polling(redis_client, worker_runtime, tripo):
    deadline = worker_runtime.settings.bff_task_deadline_seconds
    store = store_for(redis_client)
    stale = submitted_task(redis_client, tripo)
    store.update(stale.id, lambda task: task.evolve(created_at=time.time() - deadline - 1))
    fresh = submitted_task(redis_client, tripo)
    assert store.polling_task_ids("tripo") == [stale.id, fresh.id]

    poll_cycle()

    assert store.get(stale.id).error.code == "timeout"
    assert store.get(fresh.id).status == "pending"
    assert store.open_task_ids() == [fresh.id] and store.polling_task_ids("tripo") == [fresh.id]
    poll_cycle()
    assert tripo.list_calls()[-1] == [fresh.provider_task_id]


def test_a_terminal_task_never_changes_again(redis_client, worker_runtime, tripo):
    task = submitted_task(redis_client, tripo)
    store = store_for(redis_client)
    store.update(task.id, lambda current: current.evolve(status="failed"))
    tripo.succeed(task.provider_task_id)

    poll_cycle()

    assert store.get(task.id).status == "failed"


def test_the_scheduler_enqueues_one_poll_per_interval_across_processes(redis_client):
    polls = []
    schedulers = [PollScheduler(redis_client, 60.0, lambda: polls.append(1)) for _ in range(3)]

    results = [scheduler.tick() for scheduler in schedulers for _ in range(4)]

    assert results.count(True) == 1 and len(polls) == 1
    redis_client.delete(LEASE_KEY)  # the interval has passed
    assert schedulers[2].tick() is True and len(polls) == 2
