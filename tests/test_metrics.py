"""Metrics counted in Redis: exact totals, the same from every process, valid exposition
text, bounded labels, and counting that never fails its caller."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from bff.metrics import FAMILIES, Metrics, ScrapeGauges, metric_key
from bff.redis_client import connection_options
from bff.tasks.capacity import OPENAI_EDITS, TRIPO_GENERATION
from bff.tasks.queue import POLL_QUEUE, SUBMIT_QUEUE
from bff.tasks.record import COMPLETED, FAILED, Kind, Service, Task, TaskError
from tests.conftest import wait_until
from tests.redis_server import PrivateRedis, free_port
from tests.scrapes import Samples, label_values, labels, of, parse

STATUS_200 = labels(route="tasks.task_status", method="GET", status="200")


def scrape(metrics: Metrics, gauges: ScrapeGauges | None = None) -> Samples:
    body, content_type = metrics.render(gauges)
    assert content_type.startswith("text/plain; version=")
    return parse(body)


def bucket_counts(samples: Samples, histogram: str) -> dict[str, float]:
    """The cumulative count of each bucket of an unlabelled histogram, by its ``le``."""
    return {dict(labels)["le"]: value for labels, value in of(samples, f"{histogram}_bucket").items()}


def task(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL, *, status=None, error_code=None, seconds=0.0) -> Task:
    new = Task.new(service=service, kind=kind, params={}, request_id="req-test")
    if status is None:
        return new
    return dataclasses.replace(new, status=status, updated_at=new.created_at + seconds,
                               error=TaskError(error_code, "why") if error_code else None)


def on_a_transaction(redis_client, record) -> None:
    """``record(pipe)`` on a transaction of its own, as the task store does."""
    with redis_client.pipeline(transaction=True) as pipe:
        record(pipe)
        pipe.execute()


def count_created(redis_client, created) -> None:
    """Run the writes that count a new task, as the task store's create script does."""
    for command in Metrics.task_created_commands(created):
        redis_client.execute_command(*command)


@pytest.fixture
def metrics(redis_client):
    recorder = Metrics(redis_client, queues=(SUBMIT_QUEUE, POLL_QUEUE))
    yield recorder
    recorder.close()


def test_a_mix_of_calls_gives_exact_counts(redis_client, metrics):
    for _ in range(3):
        metrics.http_request("tasks.task_status", "GET", 200, 0.004)
    metrics.http_request("generate.text_to_model", "post", 202, 0.03)
    metrics.http_request(None, "GET", 404, 0.001)
    for created in (task(), task(), task(Service.OPENAI, Kind.IMAGE_TO_IMAGE)):
        count_created(redis_client, created)
    on_a_transaction(redis_client, lambda pipe: metrics.task_finished(task(status=COMPLETED, seconds=95), pipe=pipe))
    on_a_transaction(redis_client, lambda pipe: metrics.task_finished(
        task(status=FAILED, error_code="timeout", seconds=1801), pipe=pipe))
    metrics.provider_request("tripo", "create", "ok", 0.8)
    metrics.provider_request("tripo", "read_batch", "retry", 0.2)
    metrics.provider_request("tripo", "read_batch", "retry", 0.3)
    metrics.provider_request("openai", "edit", "unknown", 185.0)
    metrics.credits("tripo", "reserved", 30)
    metrics.credits("tripo", "charged", 30)
    on_a_transaction(redis_client, lambda pipe: metrics.credits("tripo", "reserved", 12.5, pipe=pipe))

    samples = scrape(metrics)

    assert of(samples, "bff_http_requests_total") == {
        STATUS_200: 3,
        labels(route="generate.text_to_model", method="POST", status="202"): 1,
        labels(route="unmatched", method="GET", status="404"): 1,
    }
    assert of(samples, "bff_tasks_created_total") == {
        labels(service="tripo", kind="text_to_model"): 2,
        labels(service="openai", kind="image_to_image"): 1,
    }
    assert of(samples, "bff_tasks_finished_total") == {
        labels(service="tripo", kind="text_to_model", status="completed", error_code=""): 1,
        labels(service="tripo", kind="text_to_model", status="failed", error_code="timeout"): 1,
    }
    assert of(samples, "bff_task_duration_seconds_sum") == {
        labels(service="tripo", kind="text_to_model"): pytest.approx(1896.0)}
    assert of(samples, "bff_provider_requests_total") == {
        labels(provider="tripo", operation="create", outcome="ok"): 1,
        labels(provider="tripo", operation="read_batch", outcome="retry"): 2,
        labels(provider="openai", operation="edit", outcome="unknown"): 1,
    }
    assert of(samples, "bff_provider_request_duration_seconds_count") == {
        labels(provider="tripo", operation="create"): 1,
        labels(provider="tripo", operation="read_batch"): 2,
        labels(provider="openai", operation="edit"): 1,
    }
    assert of(samples, "bff_credits_total") == {
        labels(service="tripo", kind="reserved"): 42.5,
        labels(service="tripo", kind="charged"): 30,
    }


def test_histogram_buckets_are_cumulative_with_count_and_sum(metrics):
    # Below the first bound, exactly on bounds (le means "at most"), between, above the last.
    for seconds in (0.01, 0.05, 0.3, 3.0, 100.0):
        metrics.poll_cycle(seconds)

    samples = scrape(metrics)

    buckets = bucket_counts(samples, "bff_poll_cycle_duration_seconds")
    assert buckets == {"0.05": 2, "0.1": 2, "0.25": 2, "0.5": 3, "1.0": 3, "2.0": 3, "3.0": 4, "5.0": 4,
                       "10.0": 4, "30.0": 4, "60.0": 4, "+Inf": 5}
    assert of(samples, "bff_poll_cycle_duration_seconds_count") == {frozenset(): 5}
    assert of(samples, "bff_poll_cycle_duration_seconds_sum") == {frozenset(): pytest.approx(103.36)}


def test_two_web_processes_report_the_same_totals(redis_client):
    first, second = Metrics(redis_client), Metrics(redis_client)
    for _ in range(2):
        first.http_request("tasks.task_status", "GET", 200, 0.004)
    for _ in range(3):
        second.http_request("tasks.task_status", "GET", 200, 0.02)
    second.flush()  # its flusher would do this within a second

    body = first.render()[0]

    assert body == second.render()[0]
    samples = parse(body)
    assert of(samples, "bff_http_requests_total") == {STATUS_200: 5}
    assert of(samples, "bff_http_request_duration_seconds_sum") == {
        labels(route="tasks.task_status"): pytest.approx(0.068)}
    first.close()
    second.close()


def test_the_background_flusher_sends_counts_without_being_asked(redis_client, metrics):
    other_process = Metrics(redis_client)

    metrics.http_request("tasks.task_status", "GET", 200, 0.004)

    def counted() -> dict:
        return of(scrape(other_process), "bff_http_requests_total")

    assert wait_until(counted, timeout=5) == {STATUS_200: 1}


def test_a_forked_child_does_not_send_its_parents_pending_counts(redis_client):
    metrics = Metrics(redis_client, flush_interval_seconds=3600)  # the parent's counts stay pending
    metrics.http_request("tasks.task_status", "GET", 200, 0.004)
    metrics.http_request("tasks.task_status", "GET", 200, 0.004)
    context = multiprocessing.get_context("fork")
    rendered = context.Queue()

    def child() -> None:
        metrics.http_request("tasks.task_status", "GET", 200, 0.004)
        rendered.put(metrics.render()[0])

    forked = context.Process(target=child)
    forked.start()
    child_body = rendered.get(timeout=30)
    forked.join(timeout=10)

    assert of(parse(child_body), "bff_http_requests_total") == {STATUS_200: 1}
    assert of(scrape(metrics), "bff_http_requests_total") == {STATUS_200: 3}
    metrics.close()


def test_a_watched_pipeline_must_be_in_multi_mode(redis_client, metrics):
    with redis_client.pipeline(transaction=True) as pipe:
        pipe.watch(metric_key("anything"))
        with pytest.raises(ValueError, match="multi"):
            metrics.task_finished(task(status=COMPLETED), pipe=pipe)
    assert of(scrape(metrics), "bff_tasks_finished_total") == {}


def test_label_values_are_only_the_projects_own_words(redis_client, metrics):
    task_id, prompt, url = "Xq3kZ9vB2mN8pL4tR7wY1cA6", "a red dragon, low poly", "https://cdn.example/model.glb?sig=abc"
    metrics.http_request("tasks.task_status", "GET", 200, 0.004)
    metrics.http_request(f"/tasks/{task_id}", "BREW", 999, 0.004)
    count_created(redis_client, task(kind=prompt))
    on_a_transaction(redis_client, lambda pipe: metrics.task_finished(
        task(status=FAILED, error_code=url), pipe=pipe))
    metrics.provider_request("tripo", task_id, "exploded", 1.0)
    metrics.credits(task_id, "stolen", 1)
    gauges = ScrapeGauges(tasks={TRIPO_GENERATION: (2, 5), task_id: (1, 1)})

    samples = scrape(metrics, gauges)

    assert label_values(samples) == {
        "tasks.task_status", "GET", "200", "tripo", "text_to_model", "failed", TRIPO_GENERATION,
        SUBMIT_QUEUE, POLL_QUEUE, "ready", "fetched", "delayed", "other"}
    stored = b"".join(field for family in FAMILIES for field in redis_client.hkeys(metric_key(family.name)))
    for secret in (task_id, prompt, url, "BREW", "999", "exploded", "stolen"):
        assert secret.encode() not in stored


def test_gauges_are_read_at_scrape_time(metrics):
    gauges = ScrapeGauges(tasks={TRIPO_GENERATION: (2, 5), OPENAI_EDITS: (0, 3)}, credits_budget=500,
                          credits_spent_today=120.5)

    samples = scrape(metrics, gauges)

    assert of(samples, "bff_tasks_waiting") == {labels(bucket=TRIPO_GENERATION): 2, labels(bucket=OPENAI_EDITS): 0}
    assert of(samples, "bff_tasks_in_flight") == {labels(bucket=TRIPO_GENERATION): 5, labels(bucket=OPENAI_EDITS): 3}
    assert of(samples, "bff_credits_service_budget") == {frozenset(): 500}
    assert of(samples, "bff_credits_spent_today") == {frozenset(): 120.5}


def test_no_credit_gauges_without_a_budget(metrics):
    samples = scrape(metrics, ScrapeGauges())

    assert of(samples, "bff_credits_service_budget") == {} and of(samples, "bff_credits_spent_today") == {}


def test_queue_lengths_come_from_dramatiqs_own_keys(redis_client, metrics):
    broker = RedisBroker(client=redis_client, middleware=[])
    broker.declare_queue(SUBMIT_QUEUE)

    def message(number: int) -> dramatiq.Message:
        return dramatiq.Message(queue_name=SUBMIT_QUEUE, actor_name="submit_task", args=(number,), kwargs={},
                                options={})

    for number in range(3):
        broker.enqueue(message(number))
    broker.enqueue(message(9), delay=60_000)
    consumer = broker.consume(SUBMIT_QUEUE, prefetch=1, timeout=100)
    consumer.nack(next(consumer))  # one dead-lettered
    next(consumer)  # one taken by a worker, not yet acked

    samples = scrape(metrics)

    assert of(samples, "bff_queue_messages") == {
        labels(queue=SUBMIT_QUEUE, state="ready"): 1, labels(queue=SUBMIT_QUEUE, state="fetched"): 1,
        labels(queue=SUBMIT_QUEUE, state="delayed"): 1,
        labels(queue=POLL_QUEUE, state="ready"): 0, labels(queue=POLL_QUEUE, state="fetched"): 0,
        labels(queue=POLL_QUEUE, state="delayed"): 0,
    }
    assert of(samples, "bff_queue_dead_messages") == {labels(queue=SUBMIT_QUEUE): 1, labels(queue=POLL_QUEUE): 0}
    consumer.close()


def test_a_bucket_layout_of_an_older_release_still_adds_up(redis_client, metrics):
    # An older release had a 0.3 s bound: its count belongs under every current bound above it.
    redis_client.hset(metric_key("bff_poll_cycle_duration_seconds"), mapping={'["0.3"]': 2, '["sum"]': 0.5})
    metrics.poll_cycle(0.1)

    samples = scrape(metrics)

    buckets = bucket_counts(samples, "bff_poll_cycle_duration_seconds")
    assert (buckets["0.1"], buckets["0.25"], buckets["0.5"], buckets["+Inf"]) == (1, 1, 3, 3)
    assert of(samples, "bff_poll_cycle_duration_seconds_sum") == {frozenset(): pytest.approx(0.6)}


def test_counting_never_fails_when_redis_is_down(caplog):
    unreachable = Metrics(redis.Redis(port=free_port(), **connection_options()))
    caplog.set_level(logging.WARNING, logger="bff.metrics")

    unreachable.provider_request("tripo", "create", "ok", 0.5)
    unreachable.poll_cycle(0.2)
    unreachable.credits("tripo", "charged", 30)
    unreachable.http_request("tasks.task_status", "GET", 200, 0.004)
    unreachable.close()

    warnings = [record.getMessage() for record in caplog.records if record.name == "bff.metrics"]
    assert len(warnings) == 1 and "counts dropped" in warnings[0]
    with pytest.raises(redis.ConnectionError):
        unreachable.render()  # a scrape does fail: the target shows as down


def test_counts_made_while_redis_was_down_are_dropped_not_kept():
    server = PrivateRedis()
    server.start()
    try:
        metrics = Metrics(redis.Redis.from_url(server.url, **connection_options()), flush_interval_seconds=3600)
        for _ in range(3):
            metrics.http_request("tasks.task_status", "GET", 200, 0.004)
        server.stop()
        metrics.flush()  # fails quietly: the counts go
        server.start()
        metrics.http_request("tasks.task_status", "GET", 200, 0.004)

        samples = scrape(metrics)

        assert of(samples, "bff_http_requests_total") == {STATUS_200: 1}
        metrics.close()
    finally:
        server.remove()
