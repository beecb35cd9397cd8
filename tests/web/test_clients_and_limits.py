"""Client keys, task ownership and per-client rate limits, on the real Redis."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from bff.identity.app_keys import ClientKeys
from bff.tasks.queue import SUBMIT_QUEUE
from bff.web import create_app
from tests.helpers import completed_model, queued, store_for

IOS_KEY = "ios-key-0123456789abcdefghij"
ANDROID_KEY = "android-key-0123456789abcdef"
KEYS = f"ios={IOS_KEY},android=sha256:{hashlib.sha256(ANDROID_KEY.encode()).hexdigest()}"


def app_with(settings, **changes):
    return create_app(dataclasses.replace(settings, **changes))


@pytest.fixture
def keyed(settings, redis_client):
    return app_with(settings, bff_api_keys=ClientKeys.parse(KEYS)).test_client()


def as_client(key):
    return {"X-API-Key": key}


def text_task(client, key=None, **headers):
    return client.post("/generate/text-to-model", json={"prompt": "a cup"}, headers={**(as_client(key) if key else {}),
                                                                                       **headers})


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "not-a-key-of-anyone-at-all"}, {"X-API-Key": ""}])
def test_a_missing_or_unknown_key_is_401_json(keyed, redis_client, headers):
    response = keyed.post("/generate/text-to-model", json={"prompt": "a cup"}, headers=headers)

    assert response.status_code == 401
    assert response.get_json()["code"] == 401 and "X-API-Key" in response.get_json()["message"]
    assert queued(redis_client, SUBMIT_QUEUE) == 0


def test_health_readiness_and_docs_need_no_key(keyed):
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"):
        assert keyed.get(path).status_code == 200, path
    assert keyed.get("/styles").status_code == 401


@pytest.mark.parametrize("key, client", [(IOS_KEY, "key:ios"), (ANDROID_KEY, "key:android")])
def test_plain_and_hashed_keys_name_the_client(keyed, redis_client, key, client):
    response = text_task(keyed, key)

    assert response.status_code == 202
    assert store_for(redis_client).get(response.get_json()["task_id"]).client == client


def test_every_configured_key_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    keys = ClientKeys.parse(KEYS)

    assert keys.client_for(IOS_KEY) == "ios"  # the first key matches...
    assert len(calls) == 2  # ...and the second is compared all the same: no early exit


def test_keys_are_never_logged(keyed, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    text_task(keyed, IOS_KEY)
    text_task(keyed, "a-wrong-key-that-someone-tried")

    assert caplog.records
    assert all(IOS_KEY not in record.getMessage() and IOS_KEY not in str(vars(record)) for record in caplog.records)


def test_another_clients_task_is_not_found(keyed, redis_client):
    task_id = text_task(keyed, IOS_KEY).get_json()["task_id"]

    assert keyed.get(f"/tasks/{task_id}/status?service=tripo", headers=as_client(IOS_KEY)).status_code == 200
    for path in (f"/tasks/{task_id}/status?service=tripo", f"/tasks/{task_id}/result", f"/tasks/{task_id}/preview",
                 f"/tasks/{task_id}/images/0"):
        assert keyed.get(path, headers=as_client(ANDROID_KEY)).status_code == 404, path
    refine = keyed.post("/generate/refine-model", json={"draft_model_task_id": task_id},
                        headers=as_client(ANDROID_KEY))
    assert refine.status_code == 404


def test_over_the_limit_is_a_429_with_retry_after_and_creates_nothing(settings, redis_client):
    client = app_with(settings, bff_api_keys=ClientKeys.parse(KEYS),
                      bff_tripo_other_requests_per_minute=2).test_client()

    answers = [text_task(client, IOS_KEY) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    body = answers[2].get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests" and "retry after" in body["message"]
    assert 55 <= int(answers[2].headers["Retry-After"]) <= 60  # the window has only just begun
    assert queued(redis_client, SUBMIT_QUEUE) == 2 and len(store_for(redis_client).open_task_ids()) == 2
    assert redis_client.keys("LIMITS*")  # counted in Redis, so every web process shares the count


def test_a_limit_counts_every_route_of_its_family_together(settings, redis_client):
    client = app_with(settings, bff_tripo_other_requests_per_minute=2).test_client()

    text = text_task(client)
    sketch = client.post("/generate/sketch-to-model", json={"image_url": "https://cdn.makeit3d.app/a.png"})
    views = client.post("/generate/image-to-model", json={"image_urls": ["https://cdn.makeit3d.app/a.png"]})

    assert [r.status_code for r in (text, sketch, views)] == [202, 202, 429]


def test_clients_have_their_own_limits(settings, redis_client):
    client = app_with(settings, bff_api_keys=ClientKeys.parse(KEYS),
                      bff_tripo_other_requests_per_minute=1).test_client()

    assert text_task(client, IOS_KEY).status_code == 202
    assert text_task(client, IOS_KEY).status_code == 429
    assert text_task(client, ANDROID_KEY).status_code == 202


def test_without_keys_clients_are_their_address_behind_one_proxy(settings, redis_client):
    client = app_with(settings, bff_tripo_other_requests_per_minute=1).test_client()

    first = text_task(client, **{"X-Forwarded-For": "203.0.113.7"})
    again = text_task(client, **{"X-Forwarded-For": "203.0.113.7"})
    other = text_task(client, **{"X-Forwarded-For": "198.51.100.9"})
    spoofed = text_task(client, **{"X-Forwarded-For": "198.51.100.10, 203.0.113.7"})  # the proxy appends

    assert [r.status_code for r in (first, again, other, spoofed)] == [202, 429, 202, 429]
    assert store_for(redis_client).get(first.get_json()["task_id"]).client == "address:203.0.113.7"


def test_each_route_family_has_its_own_limit(settings, redis_client):
    client = app_with(settings, bff_status_requests_per_minute=1).test_client()

    assert client.get("/tasks/x/status?service=tripo").status_code == 404
    assert client.get("/tasks/x/status?service=tripo").status_code == 429
    assert text_task(client).status_code == 202  # another family is not affected


def test_refinements_have_their_own_limit_and_every_request_counts(settings, redis_client):
    client = app_with(settings, bff_tripo_refine_requests_per_minute=1).test_client()
    draft = completed_model(redis_client).id

    def refine(draft_id):
        return client.post("/generate/refine-model", json={"draft_model_task_id": draft_id})

    # Refine reads the draft before recording: it counts each request first, so a request
    # about a draft that is not there counts too, and probing past the limit gets 429s.
    assert refine("unknown").status_code == 404
    limited = refine(draft)
    assert limited.status_code == 429 and limited.get_json()["code"] == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert text_task(client).status_code == 202  # another family is not affected
    assert queued(redis_client, SUBMIT_QUEUE) == 1  # the text task only: nothing for the 429


def test_image_to_image_has_the_openai_limit(settings, redis_client):
    import io

    from tests.images import encoded

    client = app_with(settings, bff_openai_requests_per_minute=1).test_client()

    def upload():
        return client.post("/generate/image-to-image", content_type="multipart/form-data",
                           data={"image": (io.BytesIO(encoded("PNG")), "a.png"), "prompt": "a robot"})

    assert upload().status_code == 202
    assert upload().status_code == 429
