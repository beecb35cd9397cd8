"""One JSON error shape, request ids, structured logs, and no secret in any of them."""

from __future__ import annotations

import json
import logging

import pytest

from bff.logs import REDACTED, JsonFormatter
from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.store import task_key
from tests.conftest import OPENAI_KEY, TRIPO_BASE_URL, TRIPO_KEY
from tests.helpers import new_text_task, queued, submit


@pytest.mark.parametrize("method, path, status", [
    ("get", "/no/such/path", 404),
    ("delete", "/styles", 405),
    ("get", "/generate/text-to-model", 405),
])
def test_errors_outside_views_use_the_json_shape(client, method, path, status):
    response = getattr(client, method)(path)

    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == status and body["status"] and body["message"]
    assert response.headers["X-Request-ID"]


def test_an_unexpected_exception_is_a_json_500_without_its_text(app, client):
    def explode():
        raise RuntimeError(f"boom with {TRIPO_KEY}")

    app.view_functions["styles.list_styles"] = explode

    response = client.get("/styles")

    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == 500 and "boom" not in json.dumps(body) and TRIPO_KEY not in json.dumps(body)


def test_a_callers_request_id_is_echoed_and_an_unsafe_one_replaced(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces and {json}"}).headers["X-Request-ID"]
    assert replaced != "bad id with spaces and {json}" and len(replaced) == 24


def test_log_lines_are_json_and_never_carry_a_secret():
    formatter = JsonFormatter((TRIPO_KEY, OPENAI_KEY))
    record = logging.makeLogRecord({"msg": "calling with Bearer %s", "args": (TRIPO_KEY,), "levelname": "INFO",
                                    "name": "t", "provider": OPENAI_KEY})

    line = formatter.format(record)

    parsed = json.loads(line)
    assert TRIPO_KEY not in line and OPENAI_KEY not in line
    assert parsed["message"] == f"calling with Bearer {REDACTED}" and parsed["provider"] == REDACTED


@pytest.mark.parametrize("status, code", [(401, 1002), (400, 1004)])
def test_a_provider_message_quoting_the_key_never_reaches_the_app(client, redis_client, worker_runtime,
                                                                   requests_mock, status, code):
    requests_mock.post(f"{TRIPO_BASE_URL}/generation/text-to-model", status_code=status,
                       json={"code": code, "message": f"bad request with key {TRIPO_KEY}"})
    task = new_text_task(redis_client)

    submit(task.id)

    body = client.get(f"/tasks/{task.id}/status?service=tripo").get_json()
    assert body["status"] == "failed" and TRIPO_KEY not in json.dumps(body)
    assert TRIPO_KEY not in redis_client.get(task_key(task.id)).decode()


def test_the_request_itself_never_logs_the_key(redis_client, worker_runtime, tripo, caplog):
    caplog.set_level(logging.DEBUG)

    submit(new_text_task(redis_client).id)

    unscrubbed = JsonFormatter(())  # the key must not reach a log call at all
    assert caplog.records and all(TRIPO_KEY not in unscrubbed.format(record) for record in caplog.records)


def test_a_read_only_redis_during_failover_is_a_503_not_a_500(client, redis_client):
    from tests.redis_server import free_port

    redis_client.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # now a read-only replica
    try:
        response = client.post("/generate/text-to-model", json={"prompt": "a cup"})
    finally:
        redis_client.execute_command("REPLICAOF", "NO", "ONE")

    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.get_json()["code"] == 503


def test_readyz_reports_redis(client):
    assert client.get("/readyz").get_json() == {"status": "ready", "redis": "ok", "storage": "not configured",
                                                 "sandbox": False}
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_redis_down_is_a_fast_503_json_on_every_route_that_needs_it(settings):
    import dataclasses
    import time

    from bff.web import create_app
    from tests.redis_server import free_port

    dead = create_app(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()

    for method, path, body in [("get", "/readyz", None), ("post", "/generate/text-to-model", {"prompt": "a cup"}),
                               ("get", "/tasks/x/status?service=tripo", None)]:
        started = time.monotonic()
        response = getattr(dead, method)(path, json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 503 and response.get_json()["code"] == 503, path
        assert elapsed < 2.0, (path, elapsed)
    assert dead.get("/readyz").headers["Retry-After"] == "5"
    assert dead.get("/healthz").status_code == 200


def test_an_oversized_body_is_a_json_413_and_queues_nothing(client, redis_client):
    from bff.web.app import MAX_REQUEST_BYTES

    response = client.post("/generate/text-to-model", data=b"{" + b" " * MAX_REQUEST_BYTES + b"}",
                           content_type="application/json")

    assert response.status_code == 413 and response.get_json()["code"] == 413
    assert queued(redis_client, SUBMIT_QUEUE) == 0


def test_a_hung_redis_is_a_503_within_2_seconds_too(settings):
    import dataclasses
    import time

    from bff.web import create_app
    from tests.redis_server import PrivateRedis

    server = PrivateRedis()
    server.start()
    try:
        hung = create_app(dataclasses.replace(settings, redis_url=server.url)).test_client()
        task_id = hung.post("/generate/text-to-model", json={"prompt": "a cup"}).get_json()["task_id"]
        server.pause()
        for method, path, body in [("get", "/readyz", None), ("post", "/generate/text-to-model", {"prompt": "a cup"}),
                                   ("get", f"/tasks/{task_id}/status?service=tripo", None)]:
            started = time.monotonic()
            response = getattr(hung, method)(path, json=body)
            assert response.status_code == 503, path
            assert time.monotonic() - started < 2.0, (path, time.monotonic() - started)
        server.resume()
        assert hung.get(f"/tasks/{task_id}/status?service=tripo").status_code == 200
    finally:
        server.resume()
        server.remove()
