"""POST /generate/text-to-model: validation, the 202 contract, and no provider call."""

from __future__ import annotations

import pytest

from bff.tasks.queue import SUBMIT_QUEUE
from tests.helpers import queued, store_for

VALID = {"prompt": "a friendly dragon", "style": "cartoon", "texture": False}


def submit_queue_length(redis_client) -> int:
    return queued(redis_client, SUBMIT_QUEUE)


def test_accepts_and_records_a_pending_task_without_calling_a_provider(client, redis_client, settings, requests_mock):
    response = client.post("/generate/text-to-model", json=VALID)

    assert response.status_code == 202
    body = response.get_json()
    assert body["service"] == "tripo" and body["status"] == "pending"
    assert body["status_url"].endswith(f"/tasks/{body['task_id']}/status?service=tripo")
    assert response.headers["Location"] == body["status_url"]
    task = store_for(redis_client).get(body["task_id"])
    assert task.params == {"prompt": "a friendly dragon", "style": "cartoon", "texture": False}
    assert task.kind == "text_to_model" and task.status == "pending"
    assert submit_queue_length(redis_client) == 1
    assert requests_mock.call_count == 0


def test_texture_defaults_to_true_and_style_to_none(client, redis_client):
    task_id = client.post("/generate/text-to-model", json={"prompt": "a vase"}).get_json()["task_id"]

    task = store_for(redis_client).get(task_id)
    assert task.params == {"prompt": "a vase", "style": None, "texture": True}


def test_task_ids_are_long_random_and_url_safe(client):
    ids = {client.post("/generate/text-to-model", json={"prompt": "a cup"}).get_json()["task_id"] for _ in range(10)}

    assert len(ids) == 10
    assert all(len(task_id) >= 24 and task_id.replace("-", "").replace("_", "").isalnum() for task_id in ids)


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ({}, "prompt", "Missing data"),
        ({"prompt": ""}, "prompt", "Length must be between 1 and 1024"),
        ({"prompt": "   "}, "prompt", "visible"),
        ({"prompt": "x" * 1025}, "prompt", "Length must be between 1 and 1024"),
        ({"prompt": "a dragon 🐉"}, "prompt", "emoji"),
        ({"prompt": 42}, "prompt", "Not a valid string"),
        ({"prompt": "a cup", "texture": "maybe"}, "texture", "Not a valid boolean"),
        ({"prompt": "a cup", "colour": "red"}, "colour", "Unknown field"),
        ({"prompt": "a cup", "style": "baroque"}, "style", "Must be one of: realistic, cartoon, low-poly"),
        ({"prompt": "x" * 1000, "style": "realistic"}, "prompt", "With style 'realistic' the prompt can be at most"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field_and_queue_nothing(client, redis_client, body, field, fragment):
    response = client.post("/generate/text-to-model", json=body)

    assert response.status_code == 422
    error = response.get_json()
    assert error["code"] == 422 and error["status"] == "Unprocessable Entity" and error["message"]
    assert fragment in " ".join(error["errors"]["json"][field])
    assert submit_queue_length(redis_client) == 0


def test_a_body_that_is_not_json_is_a_400(client, redis_client):
    response = client.post("/generate/text-to-model", data="prompt=cat", content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["errors"] == {"json": ["Invalid JSON body."]}
    assert submit_queue_length(redis_client) == 0


def test_style_prompt_limit_is_exact(client):
    from bff.tasks.record import Service
    from bff.tasks.styles import styled_prompt

    overhead = len(styled_prompt("", "realistic", Service.TRIPO))
    fits = client.post("/generate/text-to-model", json={"prompt": "x" * (1024 - overhead), "style": "realistic"})
    too_long = client.post("/generate/text-to-model", json={"prompt": "x" * (1025 - overhead), "style": "realistic"})

    assert fits.status_code == 202
    assert too_long.status_code == 422
