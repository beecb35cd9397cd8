"""Image-to-image end to end over real HTTP: the BFF's web code, a real Dramatiq worker
on Redis and the OpenAI client against the OpenAI stand-in, including its failures."""

from __future__ import annotations

import dataclasses
import io

import pytest
from PIL import Image

from bff.providers.openai import OpenAIClient
from sandbox.openai import create_openai_app
from sandbox.server import serve_in_thread
from tests.conftest import OPENAI_KEY, wait_until
from tests.images import encoded
from workers import runtime


@pytest.fixture
def stand_in(settings, worker_runtime):
    app = create_openai_app(api_key=OPENAI_KEY)
    server = serve_in_thread(app)
    base_url = f"{server.base_url}/v1"
    changed = dataclasses.replace(settings, openai_api_base_url=base_url)
    built = runtime.WorkerRuntime.build(changed)
    runtime.install(dataclasses.replace(built, openai=OpenAIClient(base_url, OPENAI_KEY, timeouts=(1.0, 2.0))))
    yield app.extensions["openai_sandbox"]
    server.shutdown()


def submit(client, prompt="a robot toy", **fields) -> str:
    form = {"image": (io.BytesIO(encoded("PNG", (300, 200))), "sketch.png"), "prompt": prompt,
            **{k: str(v) for k, v in fields.items()}}
    response = client.post("/generate/image-to-image", data=form, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return response.get_json()["task_id"]


def finished(client, task_id) -> dict:
    def ended():
        status = client.get(f"/tasks/{task_id}/status?service=openai").get_json()
        return status["status"] in ("completed", "failed") and status
    return wait_until(ended)


def test_a_sketch_comes_back_as_n_concept_images_of_the_requested_size(client, redis_client, worker, stand_in):
    task_id = submit(client, n=3, size="1536x1024")

    status = finished(client, task_id)

    assert status["status"] == "completed" and len(status["result_urls"]) == 3
    images = [client.get(f"/tasks/{task_id}/images/{i}") for i in range(3)]
    decoded = [Image.open(io.BytesIO(image.data)) for image in images]
    assert all(image.headers["Content-Type"] == "image/png" for image in images)
    assert all(image.size == (1536, 1024) for image in decoded)
    assert len({image.tobytes() for image in decoded}) == 3
    assert "response_format" not in stand_in.requests[0].form


def test_a_moderated_prompt_fails_with_content_policy_without_a_retry(client, redis_client, worker, stand_in):
    task_id = submit(client, prompt="a forbidden thing")

    status = finished(client, task_id)

    assert status["error"]["code"] == "content_policy" and len(stand_in.requests) == 1


def test_server_errors_are_retried_then_the_edit_completes(client, redis_client, worker, stand_in, monkeypatch):
    monkeypatch.setattr("workers.backoff.BASE_SECONDS", 0.05)
    stand_in.fail_next(status=503, code=None, times=2)
    task_id = submit(client)

    status = finished(client, task_id)

    assert status["status"] == "completed" and len(stand_in.requests) == 3 and len(stand_in.processed) == 1


def test_a_rate_limit_delays_the_edit_but_it_completes(client, redis_client, worker, stand_in):
    stand_in.fail_next(status=429, code="rate_limit_exceeded", headers={"retry-after-ms": "200"})
    task_id = submit(client)

    assert finished(client, task_id)["status"] == "completed"
    assert len(stand_in.processed) == 1


@pytest.mark.parametrize("misbehave", [
    lambda stand_in: stand_in.drop_next(after_processing=True),
    lambda stand_in: stand_in.delay_next(seconds=3),
])
def test_an_edit_lost_after_sending_is_not_resent(client, redis_client, worker, stand_in, misbehave):
    misbehave(stand_in)
    task_id = submit(client)

    status = finished(client, task_id)

    assert status["error"]["code"] == "provider_outcome_unknown"
    assert len(stand_in.requests) == 1
