"""Idempotency-Key on POST /generate/*: a retried request gets the first answer, never a
second task."""

from __future__ import annotations

import dataclasses
import io
import json
import threading

import pytest

from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.store import task_key
from bff.web import create_app
from tests.helpers import TEST_CLIENT, queued, store_for
from tests.images import encoded

KEY = {"Idempotency-Key": "7f1c9d1e-5c4f-4b6e-9a57-2f3b1d1c0a11"}


def tasks_recorded(redis_client) -> int:
    return len(store_for(redis_client).open_task_ids())


def test_a_retry_with_the_same_key_replays_the_first_answer(client, redis_client):
    first = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)
    again = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)

    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json() and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert tasks_recorded(redis_client) == 1 and queued(redis_client, SUBMIT_QUEUE) == 1


def test_the_same_key_with_a_different_request_is_422(client, redis_client):
    client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)

    other = client.post("/generate/text-to-model", json={"prompt": "a bowl"}, headers=KEY)
    other_route = client.post("/generate/sketch-to-model", json={"image_url": "https://cdn.makeit3d.app/a.png"},
                              headers=KEY)

    assert other.status_code == other_route.status_code == 422
    assert all("different request" in answer.get_json()["message"] for answer in (other, other_route))
    assert tasks_recorded(redis_client) == 1


def test_a_key_marked_in_progress_by_an_earlier_version_is_409(client, redis_client):
    """During a rolling deploy a web process of the version before may hold a key "in
    progress" (its fingerprint, no answer yet): the request waits for it."""
    from bff.web import idempotency
    from bff.web.intake import Caller

    caller = Caller(client=TEST_CLIENT, request_id="r-1", endpoint="generate.text_to_model",
                    idempotency_key=KEY[idempotency.HEADER])
    claim = idempotency.claim_for(caller, {"prompt": "a cup", "style": None, "texture": True}, None)
    redis_client.set(claim.redis_key, json.dumps({"fingerprint": claim.fingerprint}), ex=60)

    response = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)

    assert response.status_code == 409 and response.headers["Retry-After"] == "1"
    assert tasks_recorded(redis_client) == 0


def test_keys_belong_to_their_client(settings, redis_client):
    app = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=100))
    client = app.test_client()

    one = client.post("/generate/text-to-model", json={"prompt": "a cup"},
                      headers={**KEY, "X-Forwarded-For": "203.0.113.7"})
    two = client.post("/generate/text-to-model", json={"prompt": "a cup"},
                      headers={**KEY, "X-Forwarded-For": "198.51.100.9"})

    assert one.status_code == two.status_code == 202
    assert one.get_json()["task_id"] != two.get_json()["task_id"]


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_an_invalid_key_is_422(client, redis_client, key):
    response = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers={"Idempotency-Key": key})

    assert response.status_code == 422 and tasks_recorded(redis_client) == 0


def test_a_refused_request_does_not_use_up_the_key(settings, redis_client):
    client = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=1)).test_client()
    assert client.post("/generate/text-to-model", json={"prompt": ""}, headers=KEY).status_code == 422
    assert client.post("/generate/text-to-model", json={"prompt": "a mug"}).status_code == 202
    # Refused by the limit inside the script that checks the key and records the task.
    assert client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY).status_code == 429
    redis_client.delete(*redis_client.keys("LIMITS:*"))  # a minute later

    retried = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)

    assert retried.status_code == 202 and "Idempotent-Replayed" not in retried.headers


def test_uploads_are_part_of_the_request(client, redis_client):
    def upload(colour):
        return client.post("/generate/image-to-image", content_type="multipart/form-data", headers=KEY,
                           data={"image": (io.BytesIO(encoded("PNG", colour=colour)), "a.png"), "prompt": "x"})

    assert upload((1, 2, 3)).status_code == 202
    assert upload((1, 2, 3)).headers["Idempotent-Replayed"] == "true"
    other_image = upload((9, 9, 9))
    assert other_image.status_code == 422 and "different request" in other_image.get_json()["message"]


def test_a_retry_storm_makes_one_task(settings, redis_client):
    app = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=100))
    start = threading.Barrier(20)
    answers = []

    def retry():
        client = app.test_client()
        start.wait()
        answers.append(client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY))

    threads = [threading.Thread(target=retry) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert tasks_recorded(redis_client) == 1 and queued(redis_client, SUBMIT_QUEUE) == 1
    assert {a.status_code for a in answers} == {202}  # one made the task; the others replay its answer
    assert len({a.get_json()["task_id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19


def test_a_task_recorded_but_not_enqueued_is_still_a_202_and_the_retry_replays_it(app, client, redis_client,
                                                                                   monkeypatch):
    import redis

    def broker_down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("the broker's connection dropped")

    monkeypatch.setattr(app.extensions["bff"].queue, "submit", broker_down)  # a fault at the broker, not the store
    first = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)
    monkeypatch.undo()
    again = client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=KEY)

    assert first.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["task_id"] == first.get_json()["task_id"]
    assert tasks_recorded(redis_client) == 1 and queued(redis_client, SUBMIT_QUEUE) == 0  # reconciliation sends it


def test_a_refine_replay_gets_its_answer_even_after_the_draft_changed(client, redis_client):
    from tests.helpers import new_text_task

    draft = new_text_task(redis_client)
    store_for(redis_client).update(draft.id, lambda t: t.evolve(status="completed", provider_task_id="tripo-1",
                                                                submission="submitted", outputs={"model": "glb"}))
    first = client.post("/generate/refine-model", json={"draft_model_task_id": draft.id}, headers=KEY)
    redis_client.delete(task_key(draft.id))  # the draft expired since

    again = client.post("/generate/refine-model", json={"draft_model_task_id": draft.id}, headers=KEY)

    assert first.status_code == 202 and again.status_code == 202
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
