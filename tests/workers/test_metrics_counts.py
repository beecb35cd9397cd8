"""What the workers count: every provider call with its outcome, every task's end, every
poll cycle; exact numbers for a known mix of tasks (Tripo mocked at the HTTP boundary)."""

from __future__ import annotations

from tests.conftest import TRIPO_BASE_URL
from tests.helpers import poll_cycle, store_for, submit
from tests.scrapes import labels, of, parse
from workers import runtime


def scraped(name: str) -> dict:
    return of(parse(runtime.current().metrics.render()[0]), name)


def test_a_known_mix_of_tasks_gives_exact_counts(client, redis_client, worker_runtime, tripo, requests_mock):
    completed, failed, rate_limited = (
        client.post("/generate/text-to-model", json={"prompt": "a cup"}).get_json()["task_id"] for _ in range(3))
    submit(completed)
    submit(failed)
    requests_mock.post(f"{TRIPO_BASE_URL}/generation/text-to-model", [
        {"status_code": 429, "json": {"code": 2000, "message": "busy"}},
        {"json": tripo._create},
    ])
    assert submit(rate_limited) is not None  # to be retried
    assert submit(rate_limited) is None
    store = store_for(redis_client)
    tripo.succeed(store.get(completed).provider_task_id)
    tripo.set_task(store.get(failed).provider_task_id, "failed")
    tripo.succeed(store.get(rate_limited).provider_task_id)

    poll_cycle()  # reads the three tasks in one batch and ends them
    poll_cycle()  # nothing left to read

    text_to_model = {"service": "tripo", "kind": "text_to_model"}
    assert scraped("bff_tasks_created_total") == {labels(**text_to_model): 3}
    assert scraped("bff_tasks_finished_total") == {
        labels(**text_to_model, status="completed", error_code=""): 2,
        labels(**text_to_model, status="failed", error_code="provider_failed"): 1,
    }
    assert scraped("bff_task_duration_seconds_count") == {labels(**text_to_model): 3}
    assert scraped("bff_provider_requests_total") == {
        labels(provider="tripo", operation="create", outcome="ok"): 3,
        labels(provider="tripo", operation="create", outcome="retry"): 1,
        labels(provider="tripo", operation="read_batch", outcome="ok"): 1,
    }
    assert scraped("bff_provider_request_duration_seconds_count") == {
        labels(provider="tripo", operation="create"): 4, labels(provider="tripo", operation="read_batch"): 1}
    assert scraped("bff_poll_cycle_duration_seconds_count") == {frozenset(): 2}


def test_a_failed_batch_read_is_counted_as_retry(redis_client, client, worker_runtime, tripo, requests_mock):
    task_id = client.post("/generate/text-to-model", json={"prompt": "a cup"}).get_json()["task_id"]
    submit(task_id)
    requests_mock.post(f"{TRIPO_BASE_URL}/tasks/list", status_code=503, json={"code": 1000, "message": "down"})

    poll_cycle()

    assert scraped("bff_provider_requests_total") == {
        labels(provider="tripo", operation="create", outcome="ok"): 1,
        labels(provider="tripo", operation="read_batch", outcome="retry"): 1,
    }
    assert scraped("bff_tasks_finished_total") == {}
