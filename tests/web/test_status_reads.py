"""GET /tasks/{id}/status in one Redis round trip: limit, ownership and a body rendered when
the task changed, with the per-read parts (links, queue position, conversions) right."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import url_for
from redis.connection import AbstractConnection

from bff.tasks import status_view
from bff.tasks.error_codes import task_error
from bff.tasks.record import CLAIMED, WAITING, Kind, Service, Task
from bff.tasks.store import task_key, view_key
from bff.web import create_app
from bff.web.rate_limits import STATUS
from bff.web.schemas import TaskStatusResponse
from sandbox.identity import SANDBOX_AUDIENCE
from tests.helpers import TEST_CLIENT, completed_model, new_text_task, store_for


def status(client, task: Task, **headers):
    return client.get(f"/tasks/{task.id}/status?service={task.service}", headers=headers)


@pytest.fixture
def round_trips(monkeypatch):
    """Commands (or pipelines) this thread sends to Redis: each is one round trip."""
    sent: list[bytes] = []
    real = AbstractConnection.send_packed_command
    me = threading.get_ident()

    def counting(connection, command, *args, **kwargs):
        if threading.get_ident() == me:  # not the metrics flusher's
            sent.append(command if isinstance(command, bytes) else b"".join(command))
        return real(connection, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def test_a_status_read_with_sign_in_on_is_one_round_trip(settings, redis_client, issuer, round_trips):
    app = create_app(dataclasses.replace(settings, bff_auth_issuer=issuer.url, bff_auth_audience=SANDBOX_AUDIENCE))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {issuer.token()}"}
    task_id = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=auth).get_json()["task_id"]
    client.get(f"/tasks/{task_id}/status?service=tripo", headers=auth)  # loads the script into Redis, once
    round_trips.clear()

    answers = [client.get(f"/tasks/{task_id}/status?service=tripo", headers=auth) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len(round_trips) == 3  # token, limit, ownership and body: nothing else
    app.extensions["bff"].metrics.close()


def test_the_body_is_rendered_when_the_task_changes_not_on_each_read(client, redis_client, monkeypatch):
    task = new_text_task(redis_client)
    store_for(redis_client).update(task.id, lambda current: current.failed(task_error("timeout")))

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered on a read")

    monkeypatch.setattr(status_view, "view_fields", no_rendering)
    monkeypatch.setattr(Task, "from_json", no_rendering)
    body = status(client, task).get_json()

    assert body["status"] == "failed" and body["error"]["code"] == "timeout"


@pytest.mark.parametrize("headers, as_seen_by_the_app", [
    ({}, {}),
    ({"Host": "API.example.com:8443"}, {"HTTP_HOST": "API.example.com:8443"}),
    # Behind the platform's proxy (ProxyFix, in front of the app).
    ({"X-Forwarded-Host": "api.makeit3d.app", "X-Forwarded-Proto": "https"},
     {"HTTP_HOST": "api.makeit3d.app", "wsgi.url_scheme": "https"}),
])
def test_links_are_the_ones_url_for_builds_for_the_request(app, client, redis_client, headers, as_seen_by_the_app):
    model = completed_model(redis_client, outputs={"model": "glb", "preview": "png"})

    body = status(client, model, **headers).get_json()

    with app.test_request_context(environ_overrides=as_seen_by_the_app):
        assert body["result_url"] == url_for("tasks.task_result", task_id=model.id, _external=True)
        assert body["preview_url"] == url_for("tasks.task_preview", task_id=model.id, _external=True)
        assert body["result_urls"] == [body["result_url"]]


def test_image_links_and_inline_images(app, client, redis_client):
    task = Task.new(service=Service.OPENAI, kind=Kind.IMAGE_TO_IMAGE, params={}, request_id="r", client=TEST_CLIENT)
    store = store_for(redis_client)
    store.create(task)
    store.save_images(task.id, [b"first", b"second"])
    store.update(task.id, lambda current: current.evolve(status="completed", progress=100,
                                                         outputs={"images": 2, "image_format": "PNG"}))

    plain = status(client, task).get_json()
    inline = client.get(f"/tasks/{task.id}/status?service=openai&include=b64_json").get_json()

    with app.test_request_context():
        assert plain["result_urls"] == [url_for("tasks.task_image", task_id=task.id, index=index, _external=True)
                                        for index in (0, 1)]
    assert "b64_json" not in plain and inline["b64_json"] == ["Zmlyc3Q=", "c2Vjb25k"]


def test_a_waiting_task_shows_its_place_as_the_tasks_before_it_leave(client, redis_client):
    store = store_for(redis_client)
    tasks = [new_text_task(redis_client, created_at=1000.0 + n) for n in range(3)]
    for task in tasks:
        store.update(task.id, lambda current: current.evolve(submission=WAITING))

    before = status(client, tasks[2]).get_json()["queue_position"]
    store.update(tasks[0].id, lambda current: current.evolve(submission=CLAIMED))
    after = status(client, tasks[2]).get_json()["queue_position"]

    assert (before, after) == (3, 2)
    assert "queue_position" not in status(client, tasks[0]).get_json()


def test_the_body_has_the_documented_shape(client, redis_client):
    model = completed_model(redis_client, outputs={"model": "glb", "preview": "png"})
    client.post("/generate/convert-model", json={"model_task_id": model.id, "format": "usdz"})
    failed = new_text_task(redis_client)
    store_for(redis_client).update(failed.id, lambda current: current.failed(task_error("content_policy", 'a "q"')))

    for task in (model, failed):
        body = status(client, task).get_json()
        assert TaskStatusResponse().dump(body) == body
    assert len(status(client, model).get_json()["conversions"]) == 1


def test_a_record_written_without_a_view_is_served_and_given_one(client, redis_client):
    model = completed_model(redis_client)
    conversion = Task.new(service=Service.TRIPO, kind=Kind.CONVERT_MODEL, request_id="r", client=TEST_CLIENT,
                          params={"format": "stl", "face_limit": None, "texture_size": None})
    # As a version before views wrote them: records (with their lifetimes) and no view.
    redis_client.delete(view_key(model.id))
    redis_client.set(task_key(conversion.id), conversion.to_json(), ex=3600)
    redis_client.hset(task_key(model.id, "conversions"), "stl", conversion.id)

    body = status(client, model).get_json()

    assert body["status"] == "completed" and [entry["task_id"] for entry in body["conversions"]] == [conversion.id]
    assert 0 < redis_client.ttl(view_key(conversion.id)) <= redis_client.ttl(task_key(conversion.id))
    assert redis_client.exists(view_key(model.id))


def test_a_view_without_its_record_is_not_served(client, redis_client):
    task = new_text_task(redis_client)
    redis_client.delete(task_key(task.id))  # the record is the truth

    assert status(client, task).status_code == 404


def test_the_status_limit_is_a_429_with_retry_after_and_counts_the_whole_family(settings, redis_client):
    client = create_app(dataclasses.replace(settings, bff_status_requests_per_minute=2)).test_client()
    task = new_text_task(redis_client)

    answers = [status(client, task), client.get(f"/tasks/{task.id}/result"), status(client, task)]

    assert [answer.status_code for answer in answers] == [200, 409, 429]
    body = answers[2].get_json()
    assert body == {"code": 429, "status": "Too Many Requests",
                    "message": f"Rate limit of 2 per 1 minute for this client reached; retry after "
                               f"{answers[2].headers['Retry-After']} s."}
    assert 55 <= int(answers[2].headers["Retry-After"]) <= 60


def test_the_limit_is_exact_across_processes(settings, redis_client):
    limited = dataclasses.replace(settings, bff_status_requests_per_minute=25)
    processes = [create_app(limited), create_app(limited)]  # each its own scripts and connections
    task = new_text_task(redis_client)

    def read(number: int) -> int:
        with processes[number % 2].test_client() as client:
            return status(client, task).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(read, range(60)))

    assert codes.count(200) == 25 and codes.count(429) == 35
    for app in processes:
        app.extensions["bff"].metrics.close()


def test_the_previous_minute_counts_as_much_as_it_overlaps_the_window(settings, redis_client):
    client = create_app(dataclasses.replace(settings, bff_status_requests_per_minute=10)).test_client()
    task = new_text_task(redis_client)
    previous, _ = STATUS.window_keys(TEST_CLIENT, 10)
    redis_client.set(previous, 10, px=30_500)  # a full previous minute, half of it still in the window

    codes = [status(client, task).status_code for _ in range(6)]

    assert codes == [200] * 5 + [429]
