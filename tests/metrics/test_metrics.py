"""Metrics counted in Redis: exact totals, the same from every process, valid exposition
text, bounded labels, and counting that never fails its caller."""

from __future__ import annotations

import logging
import multiprocessing

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from bff.metrics import Metrics, ScrapeGauges
from bff.redis_client import connection_options
from tests.conftest import wait_until
from tests.metrics import processes
from tests.redis_server import PrivateRedis, free_port

Samples = dict[tuple[str, frozenset], float]


def parse(body: bytes) -> Samples:
    """Every sample of an exposition text, by name and labels (fails on invalid text)."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def scrape(metrics: Metrics, gauges=None) -> Samples:
    body, content_type = metrics.render(gauges)
    assert content_type.startswith("text/plain; version=")
    return parse(body)


def of(samples: Samples, name: str) -> dict[frozenset, float]:
    return {labels: value for (sample_name, labels), value in samples.items() if sample_name == name}


def bucket_counts(samples: Samples, histogram: str) -> dict[str, float]:
    """The cumulative count of each bucket of an unlabelled histogram, by its ``le``."""
    return {dict(labels)["le"]: value for labels, value in of(samples, f"{histogram}_bucket").items()}


def labels(**values: str) -> frozenset:
    return frozenset(values.items())


@pytest.fixture
def metrics(redis_client):
    recorder = Metrics(redis_client, queues=("submit", "poll"))
    yield recorder
    recorder.close()


def test_a_mix_of_calls_gives_exact_counts(metrics):
    for _ in range(3):
        metrics.http_request("tasks.status", "GET", 200, 0.004)
    metrics.http_request("generate.text_to_model", "post", 202, 0.03)
    metrics.http_request(None, "GET", 404, 0.001)
    metrics.task_created("tripo", "text_to_model")
    metrics.task_created("tripo", "text_to_model")
    metrics.task_created("openai", "image_to_image")
    metrics.task_finished("tripo", "text_to_model", "completed", None, 95.0)
    metrics.task_finished("tripo", "text_to_model", "failed", "timeout", 1801.0)
    metrics.provider_request("tripo", "create", "ok", 0.8)
    metrics.provider_request("tripo", "read", "retry", 0.2)
    metrics.provider_request("tripo", "read", "retry", 0.3)
    metrics.provider_request("openai", "edit", "unknown", 185.0)
    metrics.credits("tripo", "reserved", 30)
    metrics.credits("tripo", "charged", 30)
    metrics.credits("tripo", "reserved", 12.5)

    samples = scrape(metrics)

    assert of(samples, "bff_http_requests_total") == {
        labels(route="tasks.status", method="GET", status="200"): 3,
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
    assert of(samples, "bff_task_duration_seconds_sum") == {labels(service="tripo", kind="text_to_model"): 1896.0}
    assert of(samples, "bff_provider_requests_total") == {
        labels(provider="tripo", operation="create", outcome="ok"): 1,
        labels(provider="tripo", operation="read", outcome="retry"): 2,
        labels(provider="openai", operation="edit", outcome="unknown"): 1,
    }
    assert of(samples, "bff_provider_request_duration_seconds_count") == {
        labels(provider="tripo", operation="create"): 1,
        labels(provider="tripo", operation="read"): 2,
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
        first.http_request("tasks.status", "GET", 200, 0.004)
    for _ in range(3):
        second.http_request("tasks.status", "GET", 200, 0.02)
    second.task_created("tripo", "text_to_model")
    second.flush()  # its flusher would do this within a second

    body = first.render()[0]

    assert body == second.render()[0]
    samples = parse(body)
    assert of(samples, "bff_http_requests_total") == {labels(route="tasks.status", method="GET", status="200"): 5}
    assert of(samples, "bff_http_request_duration_seconds_sum") == {labels(route="tasks.status"): pytest.approx(0.068)}
    assert of(samples, "bff_tasks_created_total") == {labels(service="tripo", kind="text_to_model"): 1}
    first.close()
    second.close()


def test_separate_os_processes_report_the_same_totals(redis_client):
    context = multiprocessing.get_context("spawn")
    recorded, rendered = context.Barrier(2), context.Queue()
    url = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    workers = [context.Process(target=processes.record_then_render, args=(redis_url, requests, recorded, rendered))
               for requests in (4, 7)]
    for worker in workers:
        worker.start()
    bodies = [rendered.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)

    assert bodies[0] == bodies[1]
    assert of(parse(bodies[0]), "bff_http_requests_total") == {
        labels(route="tasks.status", method="GET", status="200"): 11}


def test_the_background_flusher_sends_counts_without_being_asked(redis_client, metrics):
    other_process = Metrics(redis_client)

    metrics.http_request("tasks.status", "GET", 200, 0.004)

    def counted() -> dict:
        return of(scrape(other_process), "bff_http_requests_total")

    assert wait_until(counted, timeout=5) == {labels(route="tasks.status", method="GET", status="200"): 1}


def test_a_forked_child_does_not_send_its_parents_pending_counts(redis_client):
    metrics = Metrics(redis_client, flush_interval_seconds=3600)  # the parent's counts stay pending
    metrics.http_request("tasks.status", "GET", 200, 0.004)
    metrics.http_request("tasks.status", "GET", 200, 0.004)  # pending in the parent, not yet flushed
    context = multiprocessing.get_context("fork")
    rendered = context.Queue()

    def child() -> None:
        metrics.http_request("tasks.status", "GET", 200, 0.004)
        rendered.put(metrics.render()[0])

    forked = context.Process(target=child)
    forked.start()
    child_body = rendered.get(timeout=30)
    forked.join(timeout=10)

    route = labels(route="tasks.status", method="GET", status="200")
    assert of(parse(child_body), "bff_http_requests_total") == {route: 1}
    assert of(scrape(metrics), "bff_http_requests_total") == {route: 3}
    metrics.close()


def test_counted_in_a_retried_transaction_once(redis_client, metrics):
    """Piggybacked on the store's optimistic transaction, a task ends (and is counted)
    exactly once even when another writer forces a retry."""
    other_writer = redis.Redis(connection_pool=redis_client.connection_pool)
    attempts = 0
    while True:
        attempts += 1
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.watch("bff:task:t1")
            if attempts == 1:
                other_writer.set("bff:task:t1", "changed meanwhile")
            pipe.multi()
            pipe.set("bff:task:t1", "completed")
            metrics.task_finished("tripo", "text_to_model", "completed", None, 60.0, pipe=pipe)
            try:
                pipe.execute()
                break
            except redis.WatchError:
                continue

    assert attempts == 2
    samples = scrape(metrics)
    assert of(samples, "bff_tasks_finished_total") == {
        labels(service="tripo", kind="text_to_model", status="completed", error_code=""): 1}
    assert of(samples, "bff_task_duration_seconds_count") == {labels(service="tripo", kind="text_to_model"): 1}


def test_a_watched_pipeline_must_be_in_multi_mode(redis_client, metrics):
    with redis_client.pipeline(transaction=True) as pipe:
        pipe.watch("bff:task:t1")
        with pytest.raises(ValueError, match="multi"):
            metrics.task_created("tripo", "text_to_model", pipe=pipe)
    assert of(scrape(metrics), "bff_tasks_created_total") == {}


def test_label_values_are_only_those_passed(redis_client, metrics):
    task_id, prompt, url = "Xq3kZ9vB2mN8pL4tR7wY1cA6", "a red dragon, low poly", "https://cdn.example/model.glb?sig=abc"
    metrics.http_request("tasks.status", "GET", 200, 0.004)
    metrics.http_request(f"/tasks/{task_id}", "BREW", 999, 0.004)
    metrics.task_created("tripo", prompt)
    metrics.task_finished("tripo", "text_to_model", "failed", url, 3.0)
    metrics.provider_request("tripo", "download", "exploded", 1.0)
    metrics.credits("tripo", "stolen", 1)
    gauges = ScrapeGauges(tasks={"tripo:generation": (2, 5)}, credits_budget={"tripo": 500},
                          credits_spent_today={"tripo": 120.0})

    samples = scrape(metrics, lambda: gauges)

    values = {value for (_, sample_labels), _ in samples.items() for name, value in sample_labels if name != "le"}
    assert values == {"tasks.status", "GET", "200", "tripo", "text_to_model", "failed", "download",
                      "tripo:generation", "submit", "poll", "ready", "fetched", "delayed", "other"}
    stored = b"".join(key + b"".join(redis_client.hkeys(key)) for key in redis_client.keys("bff:metrics:*"))
    for secret in (task_id, prompt, url, "BREW", "999", "exploded", "stolen"):
        assert secret.encode() not in stored


def test_gauges_are_read_at_scrape_time(metrics):
    gauges = ScrapeGauges(tasks={"tripo:generation": (2, 5), "openai": (0, 3)}, credits_budget={"tripo": 500},
                          credits_spent_today={"tripo": 120.5})

    samples = scrape(metrics, lambda: gauges)

    assert of(samples, "bff_tasks_waiting") == {labels(bucket="tripo:generation"): 2, labels(bucket="openai"): 0}
    assert of(samples, "bff_tasks_in_flight") == {labels(bucket="tripo:generation"): 5, labels(bucket="openai"): 3}
    assert of(samples, "bff_credits_service_budget") == {labels(service="tripo"): 500}
    assert of(samples, "bff_credits_service_spent_today") == {labels(service="tripo"): 120.5}


def test_queue_lengths_come_from_dramatiqs_own_keys(redis_client, metrics):
    broker = RedisBroker(client=redis_client, middleware=[])
    broker.declare_queue("submit")
    for number in range(3):
        broker.enqueue(dramatiq.Message(queue_name="submit", actor_name="submit_task", args=(number,), kwargs={},
                                        options={}))
    broker.enqueue(dramatiq.Message(queue_name="submit", actor_name="submit_task", args=(9,), kwargs={}, options={}),
                   delay=60_000)
    consumer = broker.consume("submit", prefetch=1, timeout=100)
    consumer.nack(next(consumer))  # one dead-lettered
    next(consumer)  # one taken by a worker, not yet acked

    samples = scrape(metrics)

    assert of(samples, "bff_queue_messages") == {
        labels(queue="submit", state="ready"): 1, labels(queue="submit", state="fetched"): 1,
        labels(queue="submit", state="delayed"): 1,
        labels(queue="poll", state="ready"): 0, labels(queue="poll", state="fetched"): 0,
        labels(queue="poll", state="delayed"): 0,
    }
    assert of(samples, "bff_queue_dead_messages") == {labels(queue="submit"): 1, labels(queue="poll"): 0}
    consumer.close()


def test_a_bucket_layout_of_an_older_release_still_adds_up(redis_client, metrics):
    # An older release had a 0.3 s bound: its count belongs under every current bound above it.
    redis_client.hset("bff:metrics:bff_poll_cycle_duration_seconds", mapping={'["0.3"]': 2, '["sum"]': 0.5})
    metrics.poll_cycle(0.1)

    samples = scrape(metrics)

    buckets = bucket_counts(samples, "bff_poll_cycle_duration_seconds")
    assert (buckets["0.1"], buckets["0.25"], buckets["0.5"], buckets["+Inf"]) == (1, 1, 3, 3)
    assert of(samples, "bff_poll_cycle_duration_seconds_sum") == {frozenset(): pytest.approx(0.6)}


def test_counting_never_fails_when_redis_is_down(caplog):
    unreachable = Metrics(redis.Redis(port=free_port(), **connection_options()))
    caplog.set_level(logging.WARNING, logger="bff.metrics")

    unreachable.task_created("tripo", "text_to_model")
    unreachable.task_finished("tripo", "text_to_model", "completed", None, 10.0)
    unreachable.provider_request("tripo", "create", "ok", 0.5)
    unreachable.poll_cycle(0.2)
    unreachable.credits("tripo", "charged", 30)
    unreachable.http_request("tasks.status", "GET", 200, 0.004)
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
            metrics.http_request("tasks.status", "GET", 200, 0.004)
        server.stop()
        metrics.flush()  # fails quietly: the counts go
        server.start()
        metrics.http_request("tasks.status", "GET", 200, 0.004)

        samples = scrape(metrics)

        assert of(samples, "bff_http_requests_total") == {labels(route="tasks.status", method="GET", status="200"): 1}
        metrics.close()
    finally:
        server.remove()
