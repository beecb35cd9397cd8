"""Sketch-to-model, multiview image-to-model and refine-model: validation, the exact
create calls sent to Tripo, and refine's rules about its draft."""

from __future__ import annotations

import pytest

from bff.tasks.error_codes import task_error
from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.record import Task
from tests.helpers import completed_model, queued, store_for, submit

FRONT, LEFT, BACK, RIGHT = (f"https://cdn.makeit3d.app/photos/{side}.jpg"
                            for side in ("front", "left", "back", "right"))
MODEL = "v3.1-20260211"


def accept(client, path, body) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["service"] == "tripo" and response.headers["Location"]
    return response.get_json()["task_id"]


def sent_for(client, tripo, path, body) -> tuple[str, dict]:
    """Accept a request, run its submission, and return the one create call Tripo saw."""
    submit(accept(client, path, body))
    calls = [(p, b) for p in ("/generation/image-to-model", "/generation/multiview-to-model", "/models/texture",
                              "/generation/text-to-model") for b in tripo.create_bodies(p)]
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("texture, flags", [(True, {"texture": True}), (False, {"texture": False, "pbr": False})])
def test_sketch_sends_the_url_as_input_without_prompt_or_style(client, redis_client, worker_runtime, tripo, texture,
                                                               flags):
    body = {"image_url": FRONT, "prompt": "a cat", "style": "cartoon", "texture": texture}

    sent = sent_for(client, tripo, "/generate/sketch-to-model", body)

    assert sent == ("/generation/image-to-model", {"input": FRONT, "model": MODEL, **flags})


def test_prompt_and_style_on_image_endpoints_are_recorded(client, redis_client):
    task_id = accept(client, "/generate/sketch-to-model", {"image_url": FRONT, "prompt": "a cat", "style": "toy"})

    assert store_for(redis_client).get(task_id).params == {"image_url": FRONT, "prompt": "a cat", "style": "toy",
                                                           "texture": True}


@pytest.mark.parametrize("views, expected", [
    ([FRONT], ("/generation/image-to-model", {"input": FRONT})),
    ([FRONT, None, None, None], ("/generation/image-to-model", {"input": FRONT})),
    ([FRONT, LEFT], ("/generation/multiview-to-model", {"inputs": [FRONT, LEFT, None, None]})),
    ([FRONT, None, BACK], ("/generation/multiview-to-model", {"inputs": [FRONT, None, BACK, None]})),
    ([FRONT, None, None, RIGHT], ("/generation/multiview-to-model", {"inputs": [FRONT, None, None, RIGHT]})),
    ([FRONT, LEFT, BACK, RIGHT], ("/generation/multiview-to-model", {"inputs": [FRONT, LEFT, BACK, RIGHT]})),
])
def test_views_go_to_the_right_endpoint_in_four_ordered_slots(client, redis_client, worker_runtime, tripo, views,
                                                              expected):
    path, fields = expected

    sent = sent_for(client, tripo, "/generate/image-to-model", {"image_urls": views, "prompt": "ignored"})

    assert sent == (path, {**fields, "model": MODEL, "texture": True})


@pytest.mark.parametrize("views, fragment", [
    ([], "Give 1 to 4 views, in the order front, left, back, right"),
    ([FRONT, LEFT, BACK, RIGHT, FRONT], "Give 1 to 4 views, in the order front, left, back, right"),
    ([None, LEFT], "The first entry is the front view and is required"),
    ("https://cdn.makeit3d.app/a.jpg", "Not a valid list"),
])
def test_a_bad_view_list_is_a_422_that_explains_the_order(client, redis_client, views, fragment):
    response = client.post("/generate/image-to-model", json={"image_urls": views})

    assert response.status_code == 422
    assert fragment in str(response.get_json()["errors"]["json"]["image_urls"])
    assert queued(redis_client, SUBMIT_QUEUE) == 0


@pytest.mark.parametrize("url, fragment", [
    ("http://cdn.makeit3d.app/a.png", "Must be an https:// URL"),
    ("ftp://cdn.makeit3d.app/a.png", "Must be an https:// URL"),
    ("https://user:secret@cdn.makeit3d.app/a.png", "user name or password"),
    ("https://" + "a" * 2040 + ".com/x.png", "at most 2048 characters"),
    ("https://127.0.0.1/a.png", "private, loopback or reserved"),
    ("https://10.1.2.3/a.png", "private, loopback or reserved"),
    ("https://169.254.169.254/latest/meta-data", "private, loopback or reserved"),
    ("https://[::1]/a.png", "private, loopback or reserved"),
    ("https://[::ffff:192.168.0.1]/a.png", "private, loopback or reserved"),
    ("https://2130706433/a.png", "numeric host"),
    ("https://0x7f000001/a.png", "numeric host"),
    ("https://localhost/a.png", "public host"),
    ("https://printer.local/a.png", "public host"),
    ("https://metadata.google.internal/a.png", "public host"),
    ("https://redis/a.png", "public host"),
    ("https://cdn.makeit3d.app:99999/a.png", "Not a valid URL"),
    ("not a url", "Must be an https:// URL"),
])
def test_unacceptable_image_urls_are_422_before_anything_is_queued(client, redis_client, url, fragment):
    response = client.post("/generate/sketch-to-model", json={"image_url": url})

    assert response.status_code == 422
    assert fragment in response.get_json()["errors"]["json"]["image_url"][0]
    assert queued(redis_client, SUBMIT_QUEUE) == 0


@pytest.mark.parametrize("url", ["https://cdn.makeit3d.app/a.png", "https://8.8.8.8/a.png",
                                 "https://[2001:4860:4860::8888]/a.png", "https://example.com/sketch.png?x=1"])
def test_public_https_urls_are_accepted(client, redis_client, url):
    assert client.post("/generate/sketch-to-model", json={"image_url": url}).status_code == 202


def test_plain_http_is_accepted_in_sandbox_mode_only(app, client, redis_client):
    import dataclasses

    services = app.extensions["bff"]
    app.extensions["bff"] = dataclasses.replace(services, settings=dataclasses.replace(services.settings,
                                                                                         bff_sandbox=True))

    response = client.post("/generate/sketch-to-model", json={"image_url": "http://cdn.makeit3d.app/a.png"})
    assert response.status_code == 202
    assert client.post("/generate/sketch-to-model", json={"image_url": "http://127.0.0.1/a.png"}).status_code == 422


def test_refine_retextures_the_drafts_tripo_task_at_detailed_quality(client, redis_client, worker_runtime, tripo):
    tripo.tasks["tripo-draft-1"] = {"task_id": "tripo-draft-1", "status": "success"}
    draft = completed_model(redis_client)

    sent = sent_for(client, tripo, "/generate/refine-model", {"draft_model_task_id": draft.id})

    assert sent == ("/models/texture", {"input": "tripo-draft-1", "model": "v3.0-20250812", "texture": True,
                                        "pbr": True, "texture_quality": "detailed"})


def test_refine_is_its_own_task(client, redis_client):
    draft = completed_model(redis_client)

    task_id = accept(client, "/generate/refine-model", {"draft_model_task_id": draft.id})

    refine = store_for(redis_client).get(task_id)
    assert task_id != draft.id and refine.kind == "refine_model" and refine.status == "pending"
    assert refine.params == {"draft_model_task_id": draft.id, "draft_provider_task_id": "tripo-draft-1"}


def test_refining_an_unknown_draft_is_404(client, redis_client):
    response = client.post("/generate/refine-model", json={"draft_model_task_id": "no-such-task"})

    assert response.status_code == 404 and "no-such-task" in response.get_json()["message"]


@pytest.mark.parametrize("changes, fragment", [
    ({"status": "processing"}, "The draft is processing; only a completed model can be refined."),
    ({"status": "failed", "error": task_error("timeout")}, "The draft is failed"),
    ({"service": "openai", "kind": "image_to_image"}, "Only a 3D model task can be refined"),
])
def test_refining_a_draft_that_is_not_a_completed_model_is_409(client, redis_client, changes, fragment):
    draft = completed_model(redis_client, **changes)

    response = client.post("/generate/refine-model", json={"draft_model_task_id": draft.id})

    assert response.status_code == 409 and fragment in response.get_json()["message"]
    assert queued(redis_client, SUBMIT_QUEUE) == 0


def test_the_refine_model_version_comes_from_settings(redis_client):
    import dataclasses

    from bff.providers.tripo_requests import tripo_create_request
    from bff.settings import Settings

    settings = dataclasses.replace(Settings.from_env(), tripo_refine_model_version="v3.5-20260815")
    task = Task.new(service="tripo", kind="refine_model", request_id="r",
                    params={"draft_model_task_id": "d", "draft_provider_task_id": "t"})

    assert tripo_create_request(task, settings)[1]["model"] == "v3.5-20260815"
