"""The submit actor's logic against Tripo at the HTTP boundary: the exact create call,
one create per task, and what each kind of provider failure does to the task."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import requests

from bff.providers.errors import UNSENT_FAULT_ATTEMPTS
from bff.providers.tripo_requests import tripo_create_request
from tests.conftest import TRIPO_BASE_URL, redis_port, wait_until
from tests.helpers import new_text_task, store_for, submit
from tests.redis_proxy import LossyRedisProxy

CREATE_URL = f"{TRIPO_BASE_URL}/generation/text-to-model"


def test_submits_the_exact_body_and_records_tripos_task_id(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client, prompt="a fox", texture=True)

    assert submit(task.id) is None

    assert tripo.create_bodies() == [{"prompt": "a fox", "model": "v3.1-20260211", "texture": True}]
    call = tripo.calls("/generation/text-to-model")[0]
    assert call.headers["Authorization"] == f"Bearer {worker_runtime.settings.tripo_api_key}"
    assert call.timeout == (5, 30)
    recorded = store_for(redis_client).get(task.id)
    assert recorded.provider_task_id in tripo.tasks and recorded.submission == "submitted"


def test_texture_off_sends_texture_and_pbr_false_and_style_rewrites_the_prompt(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client, prompt="a fox", style="low-poly", texture=False)

    submit(task.id)

    assert tripo.create_bodies() == [{
        "prompt": "a fox, low-poly style, large flat facets, simple geometric forms",
        "model": "v3.1-20260211", "texture": False, "pbr": False,
    }]


def test_the_model_version_comes_from_settings(redis_client, worker_runtime):
    task = new_text_task(redis_client)
    settings = worker_runtime.settings.__class__.from_env({**_env(), "TRIPO_MODEL_VERSION": "P1-20260311"})

    assert tripo_create_request(task, settings)[1]["model"] == "P1-20260311"


def test_a_repeated_message_creates_one_provider_task(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client)

    submit(task.id)
    submit(task.id)

    assert len(tripo.create_bodies()) == 1


def test_a_429_puts_the_task_back_to_wait_honouring_retry_after(redis_client, worker_runtime, requests_mock):
    requests_mock.post(CREATE_URL, status_code=429, headers={"Retry-After": "7"},
                       json={"code": 2000, "message": "too many running tasks"})
    task = new_text_task(redis_client)

    delay = submit(task.id)

    assert delay >= 7
    waiting = store_for(redis_client).get(task.id)
    assert waiting.status == "pending" and waiting.submission == "not_submitted" and waiting.submit_faults == 0


@pytest.mark.parametrize("answer", [
    {"status_code": 429, "json": {"code": 1007, "message": "too many creations this minute"}},
    {"status_code": 429, "text": "Too Many Requests"},
])
def test_every_kind_of_429_is_a_wait_not_a_fault(redis_client, worker_runtime, requests_mock, answer):
    requests_mock.post(CREATE_URL, **answer)
    task = new_text_task(redis_client)

    assert submit(task.id) is not None

    waiting = store_for(redis_client).get(task.id)
    assert waiting.status == "pending" and waiting.submit_faults == 0 and waiting.submission == "not_submitted"


def test_connection_refused_is_retried_then_fails_as_unavailable(redis_client, worker_runtime, requests_mock):
    requests_mock.post(CREATE_URL, exc=requests.exceptions.ConnectionError(
        __import__("urllib3").exceptions.NewConnectionError(None, "refused")))
    task = new_text_task(redis_client)

    delays = [submit(task.id) for _ in range(UNSENT_FAULT_ATTEMPTS)]

    assert all(delay is not None for delay in delays[:-1]) and delays[-1] is None
    assert requests_mock.call_count == UNSENT_FAULT_ATTEMPTS
    assert store_for(redis_client).get(task.id).error.code == "provider_unavailable"


@pytest.mark.parametrize("failure", [
    {"exc": requests.exceptions.ReadTimeout("read timed out")},
    {"exc": requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")},
    {"status_code": 500, "json": {"code": 1001, "message": "server error", "request_id": "r-500"}},
    {"status_code": 200, "text": "<html>gateway</html>"},
])
def test_an_ambiguous_create_is_never_resent(redis_client, worker_runtime, requests_mock, failure):
    requests_mock.post(CREATE_URL, **failure)
    task = new_text_task(redis_client)

    assert submit(task.id) is None
    assert submit(task.id) is None

    assert requests_mock.call_count == 1
    failed = store_for(redis_client).get(task.id)
    assert failed.status == "failed" and failed.error.code == "provider_outcome_unknown"
    assert "submit again" in failed.error.message


@pytest.mark.parametrize("status, code, expected", [
    (400, 1004, "invalid_request"),
    (400, 2008, "content_policy"),
    (403, 2010, "provider_insufficient_credit"),
    (400, 2015, "provider_model_invalid"),
    (400, 2017, "provider_model_invalid"),
    (401, 1002, "provider_auth_failed"),
    (401, 2, "provider_auth_failed"),
    (404, 2001, "provider_task_lost"),
    (418, 9999, "provider_error"),
])
def test_final_provider_errors_fail_the_task_at_once(redis_client, worker_runtime, requests_mock, status, code,
                                                     expected):
    requests_mock.post(CREATE_URL, status_code=status, headers={"X-Tripo-Trace-ID": "trace-42"},
                       json={"code": code, "message": "nope", "suggestion": "fix it", "request_id": "r-1"})
    task = new_text_task(redis_client)

    assert submit(task.id) is None

    failed = store_for(redis_client).get(task.id)
    assert (failed.status, failed.error.code) == ("failed", expected)
    assert failed.provider_error_code == str(code) and failed.provider_request_id == "trace-42"
    assert requests_mock.call_count == 1


def test_a_business_error_on_http_200_is_an_error(redis_client, worker_runtime, requests_mock):
    requests_mock.post(CREATE_URL, status_code=200, json={"code": 2010, "message": "not enough credit"})
    task = new_text_task(redis_client)

    submit(task.id)

    assert store_for(redis_client).get(task.id).error.code == "provider_insufficient_credit"


def _env() -> dict:
    import os

    return dict(os.environ)


def test_a_created_task_is_recorded_after_a_redis_outage_longer_than_a_blip(
        redis_client, settings, requests_mock, caplog, monkeypatch):
    """Redis goes away just as Tripo accepts the create: the worker keeps trying to record
    the paid task (many more times than a blip needs) and records it once Redis is back,
    rather than leaving it to fail as provider_outcome_unknown."""
    from workers import runtime, submission

    monkeypatch.setattr(submission, "_RECORD_PAUSE_SECONDS", 0.01)
    monkeypatch.setattr(submission, "_RECORD_PAUSE_CAP_SECONDS", 0.05)
    proxy = LossyRedisProxy(redis_port())
    worker_runtime = runtime.WorkerRuntime.build(dataclasses.replace(settings, redis_url=proxy.url))

    def accept_then_lose_redis(request, context):
        proxy.refuse()
        return {"code": 0, "data": {"task_id": "tripo-after-outage"}}

    requests_mock.post(CREATE_URL, json=accept_then_lose_redis)
    task = new_text_task(redis_client)
    retries = []

    def redis_back_after_many_retries():
        wait_until(lambda: len([r for r in caplog.records if "trying again" in r.getMessage()]) >= 12)
        retries.append(len(caplog.records))
        proxy.refuse(False)

    restorer = threading.Thread(target=redis_back_after_many_retries)
    restorer.start()
    try:
        assert submission.submit(worker_runtime, task.id) is None
    finally:
        restorer.join()
        proxy.close()

    assert retries, "Redis came back only after a dozen failed attempts"
    recorded = store_for(redis_client).get(task.id)
    assert recorded.submission == "submitted" and recorded.provider_task_id == "tripo-after-outage"
    assert requests_mock.call_count == 1
