"""The fast paths answer as the Flask routes do (the same read, the same intake), and hand
Flask everything they do not serve themselves."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from bff.metrics import HTTP_REQUESTS, metric_key
from bff.tasks.error_codes import task_error
from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.record import WAITING
from bff.web import create_app
from sandbox.identity import SANDBOX_AUDIENCE
from tests.helpers import completed_model, new_text_task, queued, store_for

# A query the fast path does not serve (an unknown parameter, which the Flask route ignores):
# the same read through Flask, to compare with.
THROUGH_FLASK = "&via=flask"


def both(client, path: str, **headers):
    """The answer of the fast path and of the Flask route to the same read."""
    return client.get(path, headers=headers), client.get(path + THROUGH_FLASK, headers=headers)


def same_answer(fast, flask) -> None:
    assert fast.status_code == flask.status_code
    assert fast.get_json() == flask.get_json()
    for header in ("Content-Type", "Retry-After", "WWW-Authenticate"):
        assert fast.headers.get(header) == flask.headers.get(header), header
    assert fast.headers["X-Request-ID"] and flask.headers["X-Request-ID"]


@pytest.fixture
def flask_route_calls(app, monkeypatch):
    calls = []
    view = app.view_functions["tasks.task_status"]
    monkeypatch.setitem(app.view_functions, "tasks.task_status", lambda **kwargs: calls.append(1) or view(**kwargs))
    return calls


def test_a_plain_read_is_answered_before_flask(client, redis_client, flask_route_calls):
    task = new_text_task(redis_client)

    assert client.get(f"/tasks/{task.id}/status?service=tripo").status_code == 200
    assert client.get(f"/tasks/{task.id}/status?service=tripo{THROUGH_FLASK}").status_code == 200
    assert flask_route_calls == [1]


def test_both_paths_answer_alike(client, redis_client):
    store = store_for(redis_client)
    waiting, failed = new_text_task(redis_client), new_text_task(redis_client)
    store.update(waiting.id, lambda current: current.evolve(submission=WAITING))
    store.update(failed.id, lambda current: current.failed(task_error("timeout")))
    model = completed_model(redis_client, outputs={"model": "glb", "preview": "png"})

    for path in (f"/tasks/{waiting.id}/status?service=tripo", f"/tasks/{failed.id}/status?service=tripo",
                 f"/tasks/{model.id}/status?service=tripo", f"/tasks/{model.id}/status?service=tripo&include=b64_json",
                 f"/tasks/{model.id}/status?include=b64_json&service=tripo",
                 f"/tasks/{model.id}/status?service=openai", "/tasks/no-such-task/status?service=tripo"):
        same_answer(*both(client, path, **{"X-Forwarded-Host": "api.makeit3d.app", "X-Forwarded-Proto": "https"}))
    fast, _ = both(client, f"/tasks/{waiting.id}/status?service=tripo")
    assert fast.get_json()["queue_position"] == 1  # what changes without the task changing is there too


def test_over_the_limit_both_paths_answer_alike(settings, redis_client):
    client = create_app(dataclasses.replace(settings, bff_status_requests_per_minute=1)).test_client()
    task = new_text_task(redis_client)
    client.get(f"/tasks/{task.id}/status?service=tripo")

    fast, flask = both(client, f"/tasks/{task.id}/status?service=tripo")

    assert fast.status_code == flask.status_code == 429
    # The wait is the sliding window's estimate at each moment: the two reads may straddle a
    # window's edge, so the seconds may differ; everything else is the same.
    waits = [int(answer.headers["Retry-After"]) for answer in (fast, flask)]
    assert all(1 <= wait <= 60 for wait in waits)
    bodies = [answer.get_json() for answer in (fast, flask)]
    for body, wait in zip(bodies, waits, strict=True):
        assert body["message"] == f"Rate limit of 1 per 1 minute for this client reached; retry after {wait} s."
    assert {**bodies[0], "message": ""} == {**bodies[1], "message": ""}


def test_refused_credentials_are_answered_alike_and_count_nothing(settings, redis_client, issuer):
    client = create_app(dataclasses.replace(settings, bff_auth_issuer=issuer.url, bff_auth_audience=SANDBOX_AUDIENCE,
                                            bff_status_requests_per_minute=1)).test_client()
    task_id = client.post("/generate/text-to-model", json={"prompt": "a cup"},
                          headers={"Authorization": f"Bearer {issuer.token()}"}).get_json()["task_id"]

    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        fast, flask = both(client, f"/tasks/{task_id}/status?service=tripo", **headers)
        assert fast.status_code == 401
        same_answer(fast, flask)
    signed_in = client.get(f"/tasks/{task_id}/status?service=tripo",
                           headers={"Authorization": f"Bearer {issuer.token()}"})
    assert signed_in.status_code == 200  # the four refusals did not use up the limit of 1


def test_a_signed_in_user_reads_their_own_task_only(settings, redis_client, issuer):
    client = create_app(dataclasses.replace(settings, bff_auth_issuer=issuer.url,
                                            bff_auth_audience=SANDBOX_AUDIENCE)).test_client()
    alice, bob = ({"Authorization": f"Bearer {issuer.token(sub=user)}"} for user in ("alice", "bob"))
    task_id = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=alice).get_json()["task_id"]

    assert client.get(f"/tasks/{task_id}/status?service=tripo", headers=alice).status_code == 200
    assert client.get(f"/tasks/{task_id}/status?service=tripo", headers=bob).status_code == 404


@pytest.mark.parametrize("query", ["", "?service=stability", "?service=tripo&include=everything"])
def test_other_query_forms_get_flasks_422(client, redis_client, query):
    task = new_text_task(redis_client)

    answer = client.get(f"/tasks/{task.id}/status{query}")

    assert answer.status_code == 422 and answer.get_json()["errors"]["query"]


def test_a_fast_read_is_logged_and_counted_as_the_route(client, redis_client, app, caplog):
    task = new_text_task(redis_client)
    caplog.set_level(logging.INFO, logger="bff.access")

    answer = client.get(f"/tasks/{task.id}/status?service=tripo", headers={"X-Request-ID": "poll-1"})
    app.extensions["bff"].metrics.close()  # sends this process's counts

    line = next(record for record in caplog.records if record.name == "bff.access")
    assert (line.path, line.status, line.method, line.request_id) == (f"/tasks/{task.id}/status", 200, "GET", "poll-1")
    assert answer.headers["X-Request-ID"] == "poll-1"
    assert b'["tasks.task_status","GET","200"]' in redis_client.hkeys(metric_key(HTTP_REQUESTS.name))


def test_the_flask_hooks_are_the_ones_the_fast_path_mirrors(app):
    """A per-request hook added to the app must be added to bff.web.fast_paths too."""
    hooks = {name: [hook.__name__ for hook in functions] for name, functions in
             (("before", app.before_request_funcs[None]), ("after", app.after_request_funcs[None]))}

    assert hooks == {"before": ["assign_request_id", "<lambda>"], "after": ["return_request_id"]}


# --- generations with a JSON body -------------------------------------------------------------

# A JSON content type webargs reads and the fast path does not serve: the same request
# through Flask, to compare with.
FLASK_JSON = "application/vnd.makeit3d+json"
TEXT = "/generate/text-to-model"


def post(client, body, content_type="application/json", **headers):
    return client.post(TEXT, data=body if isinstance(body, str | bytes) else json.dumps(body),
                       content_type=content_type, headers=headers)


@pytest.fixture
def flask_generation_calls(app, monkeypatch):
    calls = []
    view = app.view_functions["generate.text_to_model"]
    monkeypatch.setitem(app.view_functions, "generate.text_to_model",
                        lambda *args, **kwargs: calls.append(1) or view(*args, **kwargs))
    return calls


def test_a_valid_json_generation_is_answered_before_flask(client, redis_client, flask_generation_calls):
    fast = post(client, {"prompt": "a cup"})
    flask = post(client, {"prompt": "a cup"}, FLASK_JSON)

    assert fast.status_code == flask.status_code == 202
    assert flask_generation_calls == [1]
    for answer in (fast, flask):
        body = answer.get_json()
        task = store_for(redis_client).get(body["task_id"])
        assert task.params == {"prompt": "a cup", "style": None, "texture": True}
        assert body == {"task_id": task.id, "service": "tripo", "status": "pending",
                        "status_url": f"http://localhost/tasks/{task.id}/status?service=tripo"}
        assert answer.headers["Location"] == body["status_url"] and answer.headers["X-Request-ID"]
    assert queued(redis_client, SUBMIT_QUEUE) == 2


def test_a_replay_is_alike_from_either_path(client, redis_client):
    key = {"Idempotency-Key": "tap-1"}
    first = post(client, {"prompt": "a cup"}, **key)

    for content_type in ("application/json", FLASK_JSON):
        again = post(client, {"prompt": "a cup"}, content_type, **key)
        assert again.status_code == 202 and again.get_json() == first.get_json()
        assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Location"] == first.headers["Location"]
    assert queued(redis_client, SUBMIT_QUEUE) == 1


@pytest.mark.parametrize("body", [
    "{not json", "", "[]", json.dumps({"prompt": ""}), json.dumps({"prompt": "a cup", "texture": 1}),
    json.dumps({"prompt": "a cup", "colour": "red"}), "[" * 5000 + "]" * 5000, '{"prompt": ' + "9" * 5000 + "}",
    b'{"prompt": "caf\xe9"}',
])
def test_a_body_flask_would_refuse_gets_flasks_own_answer_and_counts_nothing(settings, redis_client, body):
    client = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=1)).test_client()

    fast, flask = post(client, body), post(client, body, FLASK_JSON)

    assert fast.status_code == flask.status_code and fast.status_code in (400, 422)
    assert fast.get_json() == flask.get_json()
    assert post(client, {"prompt": "a cup"}).status_code == 202  # neither was counted against the limit of 1


def test_refusals_after_the_body_is_read_are_alike(settings, redis_client):
    client = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=1)).test_client()
    assert post(client, {"prompt": "a cup"}).status_code == 202

    fast, flask = post(client, {"prompt": "a cup"}), post(client, {"prompt": "a cup"}, FLASK_JSON)

    assert fast.status_code == flask.status_code == 429
    bodies = [answer.get_json() for answer in (fast, flask)]
    assert all(body["message"].startswith("Rate limit of 1 per 1 minute for this client reached") for body in bodies)
    assert {**bodies[0], "message": ""} == {**bodies[1], "message": ""}  # the waits may straddle a second
    assert 1 <= int(fast.headers["Retry-After"]) <= 60


def test_a_fast_generation_is_logged_and_counted_as_the_route(client, redis_client, app, caplog):
    caplog.set_level(logging.INFO, logger="bff.access")

    answer = post(client, {"prompt": "a cup"}, **{"X-Request-ID": "tap-7"})
    app.extensions["bff"].metrics.close()

    line = next(record for record in caplog.records if record.name == "bff.access")
    assert (line.path, line.status, line.method, line.request_id) == (TEXT, 202, "POST", "tap-7")
    assert answer.headers["X-Request-ID"] == "tap-7"
    assert b'["generate.text_to_model","POST","202"]' in redis_client.hkeys(metric_key(HTTP_REQUESTS.name))


def test_the_fast_path_serves_each_json_generation_at_its_flask_route(app):
    from bff.web.routes.generate import JSON_GENERATIONS

    rules = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    assert {path: route.endpoint for path, route in JSON_GENERATIONS.items()} == {
        path: endpoint for path, endpoint in rules.items() if path in JSON_GENERATIONS}
    # The routes that read or store something before recording are Flask's alone.
    assert set(JSON_GENERATIONS) == {path for path in rules if path.startswith("/generate/")} - {
        "/generate/image-to-image", "/generate/refine-model", "/generate/convert-model"}


@pytest.mark.parametrize("endpoint, path, body", [
    ("generate.sketch_to_model", "/generate/sketch-to-model", {"image_url": "https://example.com/sketch.png"}),
    ("generate.image_to_model", "/generate/image-to-model", {"image_urls": ["https://example.com/front.jpg"]}),
])
def test_generations_whose_schemas_read_the_settings_are_served_too(app, client, redis_client, monkeypatch, endpoint,
                                                                    path, body):
    calls = []
    view = app.view_functions[endpoint]
    monkeypatch.setitem(app.view_functions, endpoint, lambda *args, **kwargs: calls.append(1) or view(*args, **kwargs))

    assert client.post(path, json=body).status_code == 202
    assert calls == []
