"""Metrics across real processes: two web roles and a worker (started by the launcher) on one
Redis, against the Tripo stand-in over HTTP. After a known mix of tasks (one completed, one
failed by the provider, one rate-limited then retried), a scrape answered by either web
process shows exactly those numbers; the token is enforced; no label carries an id."""

from __future__ import annotations

import pytest
import requests
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from bff.metrics import FAMILIES, metric_key
from bff.tasks.capacity import TRIPO_GENERATION
from bff.tasks.queue import SUBMIT_QUEUE
from sandbox.server import serve_in_thread
from sandbox.tripo import create_tripo_app
from tests.conftest import TRIPO_KEY, wait_until
from tests.processes.running import start, stop, wait_ready
from tests.redis_server import free_port
from tests.scrapes import Samples, labels, of, parse

TOKEN = "metrics-token-0123456789abcdef"
CREATE_PATH = "/generation/text-to-model"
# The families whose numbers the mix fixes: every web process must report exactly these.
TASK_AND_PROVIDER_FAMILIES = ("bff_tasks_created_total", "bff_tasks_finished_total", "bff_task_duration_seconds",
                              "bff_provider_requests_total", "bff_provider_request_duration_seconds")


@pytest.fixture
def deployment(redis_client):
    tripo_app = create_tripo_app(api_key=TRIPO_KEY, task_seconds=1.0)
    stand_in = serve_in_thread(DispatcherMiddleware(NotFound(), {"/tripo": tripo_app}))
    environ = {
        "WEB_CONCURRENCY": "1", "WORKER_PROCESSES": "1", "WORKER_THREADS": "2",
        "TRIPO_API_BASE_URL": f"{stand_in.base_url}/tripo/v3", "BFF_POLL_INTERVAL_SECONDS": "0.3",
        "BFF_METRICS_TOKEN": TOKEN, "BFF_STATUS_REQUESTS_PER_MINUTE": "100000",
    }
    ports = [free_port(), free_port()]
    webs = [start("web", {**environ, "PORT": str(port)}) for port in ports]
    worker = start("worker", environ)
    base_urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base_url, web in zip(base_urls, webs, strict=True):
            wait_ready(base_url, web)
        # Start from zero: counts of earlier tests in this Redis (and the readiness checks) go.
        redis_client.delete(*(metric_key(family.name) for family in FAMILIES))
        yield base_urls, tripo_app.extensions["tripo_sandbox"], webs
    finally:
        stop(*webs, worker)
        stand_in.shutdown()


def post_task(base_url: str, prompt: str) -> dict:
    response = requests.post(f"{base_url}/generate/text-to-model", json={"prompt": prompt}, timeout=10)
    assert response.status_code == 202
    return response.json()


def scrape(base_url: str) -> tuple[str, Samples]:
    response = requests.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200
    return response.text, parse(response.text)


def fixed_by_the_mix(samples: Samples) -> Samples:
    return {key: value for key, value in samples.items() if key[0].startswith(TASK_AND_PROVIDER_FAMILIES)}


def test_either_web_process_reports_the_exact_numbers_of_a_known_mix(deployment):
    (first, second), tripo, _ = deployment
    tripo.fail_next(CREATE_PATH, status=429, code=2000, message="too many tasks")
    rate_limited = post_task(first, "a teapot, rate limited first")
    wait_until(lambda: len(tripo.tasks) == 1, timeout=30)  # refused once, then created
    tripo.set_outcome(None, "failed")
    failed = post_task(second, "a teapot that fails")
    wait_until(lambda: len(tripo.tasks) == 2, timeout=30)
    completed = post_task(first, "a teapot that works")
    tasks = [rate_limited, failed, completed]

    def all_ended() -> bool:
        return all(requests.get(task["status_url"].replace(first, base), timeout=5).json()["status"]
                   in ("completed", "failed") for task in tasks for base in (first, second))

    wait_until(all_ended, timeout=60, interval=0.3)

    # HTTP counts reach Redis within a second of each request (each process's flusher).
    def same_http_counts() -> tuple[str, str] | None:
        scrapes = [scrape(first), scrape(second)]
        posts = [of(samples, "bff_http_requests_total").get(
            labels(route="generate.text_to_model", method="POST", status="202")) for _, samples in scrapes]
        return (scrapes[0][0], scrapes[1][0]) if posts == [3, 3] else None

    bodies = wait_until(same_http_counts, timeout=10, interval=0.3)
    first_samples, second_samples = parse(bodies[0]), parse(bodies[1])

    assert fixed_by_the_mix(first_samples) == fixed_by_the_mix(second_samples)
    text_to_model = {"service": "tripo", "kind": "text_to_model"}
    assert of(first_samples, "bff_tasks_created_total") == {labels(**text_to_model): 3}
    assert of(first_samples, "bff_tasks_finished_total") == {
        labels(**text_to_model, status="completed", error_code=""): 2,
        labels(**text_to_model, status="failed", error_code="provider_failed"): 1,
    }
    assert of(first_samples, "bff_task_duration_seconds_count") == {labels(**text_to_model): 3}
    provider_calls = of(first_samples, "bff_provider_requests_total")
    assert provider_calls.pop(labels(provider="tripo", operation="read_batch", outcome="ok")) >= 1
    assert provider_calls == {labels(provider="tripo", operation="create", outcome="ok"): 3,
                              labels(provider="tripo", operation="create", outcome="retry"): 1}
    assert of(first_samples, "bff_tasks_in_flight")[labels(bucket=TRIPO_GENERATION)] == 0
    assert of(first_samples, "bff_queue_messages")[labels(queue=SUBMIT_QUEUE, state="ready")] == 0
    assert of(first_samples, "bff_poll_cycle_duration_seconds_count")[frozenset()] > 0
    private = [task["task_id"] for task in tasks] + list(tripo.tasks) + ["a teapot", "127.0.0.1", TOKEN]
    assert not [value for value in private for body in bodies if value in body]


def test_the_token_is_enforced_by_the_real_process(deployment):
    (first, _), _, _ = deployment

    assert requests.get(f"{first}/metrics", timeout=5).status_code == 401
    assert requests.get(f"{first}/metrics", headers={"Authorization": "Bearer wrong-token-0123456789abcdef"},
                        timeout=5).status_code == 401


def test_a_web_process_that_stops_sends_its_last_counts_first(deployment):
    (first, second), _, (_, second_web) = deployment
    for _ in range(5):
        assert requests.get(f"{second}/styles", timeout=5).status_code == 200

    stop(second_web)  # at once: sooner than its flusher's next round

    _, samples = scrape(first)
    assert of(samples, "bff_http_requests_total")[labels(route="styles.list_styles", method="GET", status="200")] == 5
