"""GET /tasks/{id}/status and the result routes' error cases."""

from __future__ import annotations

from bff.tasks.queue import POLL_QUEUE
from tests.helpers import new_text_task, queued, store_for


def test_a_pending_task_has_the_documented_shape(client, redis_client):
    task = new_text_task(redis_client)

    response = client.get(f"/tasks/{task.id}/status?service=tripo")

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"task_id", "service", "status", "progress", "result_url", "result_urls", "preview_url",
                         "error", "created_at", "updated_at"}
    assert body["task_id"] == task.id and body["status"] == "pending" and body["progress"] == 0
    assert body["result_url"] is None and body["result_urls"] is None
    assert body["preview_url"] is None and body["error"] is None
    assert body["created_at"].endswith("Z") and "T" in body["created_at"]


def test_a_failed_task_shows_its_error(client, redis_client):
    from bff.tasks.error_codes import task_error

    task = new_text_task(redis_client)
    store_for(redis_client).update(task.id, lambda current: current.failed(task_error("timeout")))

    body = client.get(f"/tasks/{task.id}/status?service=tripo").get_json()

    assert body["status"] == "failed" and body["error"]["code"] == "timeout" and body["error"]["message"]


def test_unknown_id_and_wrong_service_are_404(client, redis_client):
    task = new_text_task(redis_client)

    unknown = client.get("/tasks/no-such-task/status?service=tripo")
    wrong_service = client.get(f"/tasks/{task.id}/status?service=openai")

    assert unknown.status_code == wrong_service.status_code == 404
    assert unknown.get_json()["code"] == 404 and unknown.get_json()["message"]


def test_missing_or_invalid_service_is_422(client, redis_client):
    task = new_text_task(redis_client)

    missing = client.get(f"/tasks/{task.id}/status")
    invalid = client.get(f"/tasks/{task.id}/status?service=stability")

    assert missing.status_code == invalid.status_code == 422
    assert "service" in missing.get_json()["errors"]["query"]
    assert "Must be one of: tripo, openai" in invalid.get_json()["errors"]["query"]["service"][0]


def test_result_of_an_unfinished_task_is_409_and_of_an_unknown_task_404(client, redis_client):
    task = new_text_task(redis_client)

    assert client.get(f"/tasks/{task.id}/result").status_code == 409
    assert client.get("/tasks/nope/result").status_code == 404
    assert client.get(f"/tasks/{task.id}/preview").get_json()["message"].startswith("The task is pending")


def test_result_without_a_worker_to_refresh_the_link_is_503_not_a_hang(client, redis_client, monkeypatch):
    import bff.web.output_links

    monkeypatch.setattr(bff.web.output_links, "REFRESH_WAIT_SECONDS", 0.3)
    task = new_text_task(redis_client)
    store_for(redis_client).update(
        task.id, lambda current: current.evolve(status="completed", progress=100, outputs={"model": "glb"})
    )

    response = client.get(f"/tasks/{task.id}/result")

    assert response.status_code == 503 and response.headers["Retry-After"]
    assert queued(redis_client, POLL_QUEUE) == 1  # one refresh asked for
