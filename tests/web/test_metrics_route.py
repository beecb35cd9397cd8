"""GET /metrics: there only with its token, answering only that token; requests counted by
endpoint, never by path; the gauges read at scrape time; the embedded store works too."""

from __future__ import annotations

import dataclasses

import pytest

from bff.identity.app_keys import ClientKeys
from bff.settings import Settings
from bff.tasks.capacity import TRIPO_GENERATION
from bff.tasks.queue import SUBMIT_QUEUE
from bff.web import create_app
from tests.helpers import TEST_CLIENT
from tests.redis_server import free_port
from tests.scrapes import label_values, labels, of, parse

TOKEN = "metrics-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CLIENT_KEY = "ios-key-0123456789abcdefghij"


@pytest.fixture
def make_app():
    """Apps made with changed settings; their metrics flushers stop with the test."""
    made = []

    def make(settings: Settings, **changes):
        app = create_app(dataclasses.replace(settings, **changes))
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["bff"].metrics.close()


@pytest.fixture
def scraper(settings, make_app):
    return make_app(settings, bff_metrics_token=TOKEN).test_client()


def test_without_a_token_there_is_no_metrics_route(client):
    response = client.get("/metrics", headers=BEARER)

    assert response.status_code == 404 and response.get_json()["code"] == 404


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"}, {"X-API-Key": TOKEN},
])
def test_only_the_token_as_a_bearer_token_reads_the_metrics(scraper, headers):
    response = scraper.get("/metrics", headers=headers)

    assert response.status_code == 401 and response.get_json()["code"] == 401
    assert "bff_" not in response.get_data(as_text=True)


def test_the_token_reads_prometheus_text_not_cached(scraper):
    response = scraper.get("/metrics", headers=BEARER)

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=") and response.headers["Cache-Control"] == "no-store"
    assert "# TYPE bff_tasks_created_total counter" in response.get_data(as_text=True)


def test_metrics_need_no_client_key_and_count_against_no_client_limit(settings, make_app):
    keyed = make_app(settings, bff_metrics_token=TOKEN, bff_api_keys=ClientKeys.parse(f"ios={CLIENT_KEY}"),
                     bff_status_requests_per_minute=1).test_client()

    assert all(keyed.get("/metrics", headers=BEARER).status_code == 200 for _ in range(3))


def test_metrics_are_not_part_of_the_api_document(scraper):
    assert not any("metrics" in path for path in scraper.get("/openapi.json").get_json()["paths"])


def test_requests_are_counted_by_endpoint_with_no_id_or_client_in_any_label(scraper, redis_client):
    prompt = "a dragon made of glass"
    task_id = scraper.post("/generate/text-to-model", json={"prompt": prompt}).get_json()["task_id"]
    scraper.get(f"/tasks/{task_id}/status?service=tripo")
    scraper.get(f"/no/such/path/{task_id}")
    scraper.get("/metrics")  # refused

    body = scraper.get("/metrics", headers=BEARER).get_data(as_text=True)

    samples = parse(body)
    requests = of(samples, "bff_http_requests_total")
    assert requests[labels(route="generate.text_to_model", method="POST", status="202")] >= 1
    assert requests[labels(route="tasks.task_status", method="GET", status="200")] >= 1
    assert requests[labels(route="unmatched", method="GET", status="404")] >= 1
    assert requests[labels(route="metrics.scrape", method="GET", status="401")] == 1  # this test's own
    for private in (task_id, prompt, TEST_CLIENT, "/tasks/", TOKEN):
        assert private not in body
    assert {"generate.text_to_model", "tasks.task_status", "metrics.scrape", "unmatched"} <= label_values(samples)


def test_a_scrape_reads_the_task_queues_and_the_dramatiq_queues(scraper):
    scraper.post("/generate/text-to-model", json={"prompt": "a cup"})

    samples = parse(scraper.get("/metrics", headers=BEARER).get_data())

    assert of(samples, "bff_tasks_created_total") == {labels(service="tripo", kind="text_to_model"): 1}
    assert of(samples, "bff_queue_messages")[labels(queue=SUBMIT_QUEUE, state="ready")] == 1
    assert of(samples, "bff_tasks_waiting")[labels(bucket=TRIPO_GENERATION)] == 0
    assert of(samples, "bff_tasks_in_flight")[labels(bucket=TRIPO_GENERATION)] == 0


def test_a_scrape_with_redis_down_is_a_503(settings, make_app):
    dead = make_app(settings, bff_metrics_token=TOKEN, redis_url=f"redis://127.0.0.1:{free_port()}/0").test_client()

    response = dead.get("/metrics", headers=BEARER)

    assert response.status_code == 503 and response.headers["Retry-After"]


def test_the_embedded_sandbox_store_serves_metrics_too(make_app):
    sandbox = Settings.from_env({"BFF_SANDBOX": "true", "BFF_SANDBOX_PORT": str(free_port()),
                                 "BFF_METRICS_TOKEN": TOKEN, "BFF_ALLOW_ANONYMOUS": "true"})
    app = make_app(sandbox)
    app.extensions["bff"].redis.flushall()  # the embedded store lives as long as this test process
    client = app.test_client()

    assert client.post("/generate/text-to-model", json={"prompt": "a cup"}).status_code == 202
    samples = parse(client.get("/metrics", headers=BEARER).get_data())

    assert of(samples, "bff_tasks_created_total") == {labels(service="tripo", kind="text_to_model"): 1}
    assert of(samples, "bff_queue_messages")[labels(queue=SUBMIT_QUEUE, state="ready")] == 1
