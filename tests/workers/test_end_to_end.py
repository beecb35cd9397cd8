"""The whole path through a real Dramatiq worker on Redis: POST, submit actor, Tripo
create, scheduled poller, status completed, and result links that outlive Tripo's URLs."""

from __future__ import annotations

import dataclasses
import json
import logging

from bff.tasks.store import task_key
from tests.conftest import wait_until
from tests.helpers import store_for
from workers import runtime


def status_of(client, task_id):
    return client.get(f"/tasks/{task_id}/status?service=tripo").get_json()


def test_text_to_model_runs_to_completed_and_the_result_redirects(client, redis_client, worker, tripo):
    accepted = client.post("/generate/text-to-model", json={"prompt": "a dragon", "style": "toy"}).get_json()
    task_id = accepted["task_id"]

    provider_id = wait_until(lambda: store_for(redis_client).get(task_id).provider_task_id)
    assert tripo.create_bodies()[0]["prompt"].startswith("a dragon, collectible toy figure")
    tripo.set_task(provider_id, "running", 37)
    wait_until(lambda: status_of(client, task_id)["progress"] == 37)
    assert status_of(client, task_id)["status"] == "processing"
    tripo.succeed(provider_id)
    status = wait_until(lambda: (s := status_of(client, task_id))["status"] == "completed" and s)

    assert status["progress"] == 100 and status["error"] is None
    assert status["result_url"] == f"http://localhost/tasks/{task_id}/result"
    result = client.get(f"/tasks/{task_id}/result")
    assert result.status_code == 302
    assert result.headers["Location"].startswith(f"https://tripo-data.test/{provider_id}/model.glb?Expires=")
    preview = client.get(f"/tasks/{task_id}/preview")
    assert preview.headers["Location"].startswith(f"https://tripo-data.test/{provider_id}/preview.png?")
    assert len(tripo.create_bodies()) == 1


def test_an_expired_cached_url_is_refreshed_from_tripo_by_a_worker(client, redis_client, worker, tripo):
    task_id = client.post("/generate/text-to-model", json={"prompt": "a vase"}).get_json()["task_id"]
    provider_id = wait_until(lambda: store_for(redis_client).get(task_id).provider_task_id)
    tripo.succeed(provider_id)
    wait_until(lambda: status_of(client, task_id)["status"] == "completed")
    first = client.get(f"/tasks/{task_id}/result").headers["Location"]
    reads_before = len(tripo.calls(f"/tasks/{provider_id}"))

    redis_client.delete(task_key(task_id, "urls"))  # what the URL cache TTL does after a few minutes
    second = client.get(f"/tasks/{task_id}/result")

    assert second.status_code == 302 and second.headers["Location"] != first
    assert len(tripo.calls(f"/tasks/{provider_id}")) == reads_before + 1


def test_the_cached_url_lives_no_longer_than_the_configured_ttl(client, redis_client, worker, tripo):
    short = dataclasses.replace(runtime.current().settings, tripo_url_ttl_seconds=0.5)
    runtime.install(runtime.WorkerRuntime.build(short))
    task_id = client.post("/generate/text-to-model", json={"prompt": "a cup"}).get_json()["task_id"]
    provider_id = wait_until(lambda: store_for(redis_client).get(task_id).provider_task_id)
    tripo.succeed(provider_id)
    wait_until(lambda: status_of(client, task_id)["status"] == "completed")

    assert 0 < redis_client.pttl(task_key(task_id, "urls")) <= 400
    wait_until(lambda: not redis_client.exists(task_key(task_id, "urls")), timeout=2)


def test_the_request_id_follows_the_task_into_the_worker_logs(client, redis_client, worker, tripo, caplog):
    from bff.logs import JsonFormatter

    caplog.set_level(logging.INFO)
    response = client.post("/generate/text-to-model", json={"prompt": "a boat"}, headers={"X-Request-ID": "trace-me-1"})
    task_id = response.get_json()["task_id"]

    def submitted_lines():
        return [JsonFormatter().format(r) for r in caplog.records
                if r.name == "workers.senders" and r.getMessage() == "submitted"]

    line = json.loads(wait_until(submitted_lines)[0])
    assert response.headers["X-Request-ID"] == "trace-me-1"
    assert (line["request_id"], line["task_id"]) == ("trace-me-1", task_id)
