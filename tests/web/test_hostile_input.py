"""Input that used to make the service answer 500 or slip through: each a clear 4xx now."""

from __future__ import annotations

import pytest

from bff.tasks.queue import SUBMIT_QUEUE
from tests.helpers import queued


def test_a_list_with_a_missing_front_view_and_a_bad_url_gets_a_422_that_serialises(client, redis_client):
    response = client.post("/generate/image-to-model", json={"image_urls": [None, "x"]})

    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]["image_urls"]
    assert "front view" in errors["_schema"][0] and errors["1"] == ["Must be an https:// URL."]


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,  # deeper than the JSON parser can go
    '{"prompt": "a fox", "texture": ' + "9" * 5000 + "}",  # an integer too long to convert
    '{"prompt": "a fox"',
], ids=["deeply nested", "huge integer", "truncated"])
def test_json_the_service_cannot_read_is_a_400(client, redis_client, body):
    response = client.post("/generate/text-to-model", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["errors"] == {"json": ["Invalid JSON body."]}
    assert queued(redis_client, SUBMIT_QUEUE) == 0


@pytest.mark.parametrize(("prompt", "message"), [
    ("\u200b", "Must contain visible characters."),
    ("\u202e", "Must contain visible characters."),
    (" \u200b\u2060 ", "Must contain visible characters."),
    ("a\x00b", "Must not contain control characters."),
    ("a\x1bb", "Must not contain control characters."),
    ("a\ud800b", "Must be valid Unicode text (it contains a lone surrogate)."),
])
@pytest.mark.parametrize("route", ["/generate/text-to-model", "/generate/sketch-to-model"])
def test_prompts_must_be_visible_plain_text(client, redis_client, route, prompt, message):
    body = {"prompt": prompt} if route.endswith("text-to-model") else {
        "prompt": prompt, "image_url": "https://cdn.makeit3d.app/a.png"}

    response = client.post(route, json=body)

    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["prompt"] == [message]
    assert queued(redis_client, SUBMIT_QUEUE) == 0


def test_a_prompt_with_tabs_and_line_breaks_is_ordinary_text(client):
    assert client.post("/generate/text-to-model", json={"prompt": "a fox\n\twith a hat\r\n"}).status_code == 202


def test_image_prompts_are_checked_too(client, redis_client):
    from tests.images import encoded

    response = client.post("/generate/image-to-image", data={"image": (encoded("PNG"), "a.png"), "prompt": "\u200b"},
                           content_type="multipart/form-data")

    assert response.status_code == 422 and "prompt" in response.get_json()["errors"]["multipart"]


@pytest.mark.parametrize("texture", [0, 1, "true", "yes", None])
def test_booleans_are_json_booleans(client, texture):
    response = client.post("/generate/text-to-model", json={"prompt": "a fox", "texture": texture})

    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["texture"] in (["Not a valid boolean."], ["Field may not be null."])


def test_a_wrong_method_says_which_methods_are_allowed(client):
    response = client.get("/generate/text-to-model")

    assert response.status_code == 405 and response.get_json()["code"] == 405
    assert set(response.headers["Allow"].split(", ")) >= {"POST"}


def test_the_spec_declares_no_api_key_when_none_is_configured(client):
    spec = client.get("/openapi.json").get_json()

    assert spec.get("security", []) == []
    assert "ApiKey" not in spec.get("components", {}).get("securitySchemes", {})
