"""POST /generate/image-to-image and its worker path, with OpenAI mocked at the HTTP
boundary: upload checks, the exact multipart call, each error class, and the results."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.store import task_key
from tests.conftest import OPENAI_KEY
from tests.helpers import queued, store_for, submit
from tests.images import encoded, png_claiming_size

EDITS_URL = "https://api.openai.com/v1/images/edits"


def post(client, image: bytes | None = None, filename: str = "sketch.png", **fields):
    form = {"prompt": "a robot toy", **{k: str(v) for k, v in fields.items()}}
    if image is not None:
        form["image"] = (io.BytesIO(image), filename)
    return client.post("/generate/image-to-image", data=form, content_type="multipart/form-data")


def queued_submits(redis_client) -> int:
    return queued(redis_client, SUBMIT_QUEUE)


def b64_images(count: int, size=(1024, 1024)) -> list[dict]:
    return [{"b64_json": base64.b64encode(encoded("PNG", size, (i * 40, 90, 200))).decode()} for i in range(count)]


@pytest.fixture
def openai_ok(requests_mock):
    def answer(request, context):
        context.headers["x-request-id"] = "req_abc123"
        n = int(_multipart_fields(request)["n"])
        return {"created": 1795480000, "data": b64_images(n, (32, 32)), "usage": {"total_tokens": 1}}

    return requests_mock.post(EDITS_URL, json=answer)


def _multipart_fields(request) -> dict:
    """The text fields of a multipart request, parsed with werkzeug (what a server sees)."""
    from werkzeug.formparser import parse_form_data
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(method="POST", data=request.body,
                             headers={"Content-Type": request.headers["Content-Type"]}).get_environ()
    _, form, files = parse_form_data(environ)
    return {**form.to_dict(), **{f"file:{name}": part for name, part in files.items()}}


# --- validation ------------------------------------------------------------------

@pytest.mark.parametrize("image, filename, status, fragment", [
    (None, None, 422, "Missing data for required field"),
    (b"", "sketch.png", 422, "empty"),
    (b"just some text, honestly", "sketch.png", 422, "not a PNG, JPEG or WebP image"),
    (encoded("PNG")[:-30], "sketch.png", 422, "truncated or corrupt"),
    (encoded("GIF"), "sketch.gif", 422, "must be PNG, JPEG or WebP, not GIF"),
    (png_claiming_size(100_000, 100_000), "bomb.png", 422, "too many pixels"),
    (png_claiming_size(9000, 9000), "big.png", 422, "9000x9000 px; at most 8192 px a side"),
    (encoded("PNG", (8193, 1)), "wide.png", 422, "8193x1 px"),
])
def test_bad_images_are_refused_and_nothing_is_queued(client, redis_client, requests_mock, image, filename, status,
                                                      fragment):
    response = post(client, image, filename or "x")

    assert response.status_code == status
    assert fragment in str(response.get_json()["errors"]["multipart"]["image"])
    assert queued_submits(redis_client) == 0 and requests_mock.call_count == 0


@pytest.mark.parametrize("fields, field, fragment", [
    ({"prompt": ""}, "prompt", "Length must be between 1 and 32000"),
    ({"prompt": "   "}, "prompt", "visible"),
    ({"prompt": "x" * 32001}, "prompt", "Length must be between 1 and 32000"),
    ({"n": 0}, "n", "greater than or equal to 1 and less than or equal to 10"),
    ({"n": 11}, "n", "greater than or equal to 1 and less than or equal to 10"),
    ({"n": "two"}, "n", "Not a valid integer"),
    ({"size": "512x512"}, "size", "Must be one of: 1024x1024, 1536x1024, 1024x1536, auto"),
    ({"background": "green"}, "background", "Must be one of: transparent, opaque, auto"),
    ({"style": "baroque"}, "style", "Must be one of"),
    ({"response_format": "url"}, "response_format", "Unknown field"),
])
def test_bad_fields_are_422_naming_the_field(client, redis_client, fields, field, fragment):
    response = post(client, encoded("PNG"), **fields)

    assert response.status_code == 422
    assert fragment in str(response.get_json()["errors"]["multipart"][field])
    assert queued_submits(redis_client) == 0


def test_an_image_over_the_upload_limit_is_413(app, client, redis_client):
    import dataclasses

    services = app.extensions["bff"]
    app.extensions["bff"] = dataclasses.replace(
        services, settings=dataclasses.replace(services.settings, bff_max_upload_mb=0.001))

    response = post(client, encoded("PNG", (256, 256), (1, 2, 3)) + b"\0" * 2000)

    assert response.status_code == 413 and "larger than" in response.get_json()["message"]
    assert queued_submits(redis_client) == 0


def test_a_body_over_the_limit_is_413_before_it_is_read(client, redis_client, settings):
    response = post(client, b"\0" * (settings.max_upload_bytes + 512 * 1024))

    assert response.status_code == 413 and response.get_json()["code"] == 413
    assert queued_submits(redis_client) == 0


@pytest.mark.parametrize("format_name", ["PNG", "JPEG", "WEBP"])
def test_a_good_image_is_accepted_and_stored_with_the_task(client, redis_client, format_name):
    response = post(client, encoded(format_name), filename="anything.bin", n=3, style="cartoon")

    assert response.status_code == 202
    body = response.get_json()
    assert body["service"] == "openai" and body["status_url"].endswith("service=openai")
    store = store_for(redis_client)
    task = store.get(body["task_id"])
    assert task.params == {"prompt": "a robot toy", "style": "cartoon", "n": 3, "size": "1024x1024"}
    upload = store.upload(task.id)
    assert upload.data == encoded(format_name) and upload.content_type == f"image/{format_name.lower()}"
    assert 0 < redis_client.ttl(task_key(task.id, "upload"))
    assert queued_submits(redis_client) == 1


# --- the call to OpenAI --------------------------------------------------------

def test_the_edit_sends_exactly_the_documented_fields(client, redis_client, worker_runtime, openai_ok):
    response = post(client, encoded("JPEG"), n=2, size="1536x1024", style="toy", background="transparent")
    task_id = response.get_json()["task_id"]

    submit(task_id)

    request = openai_ok.last_request
    fields = _multipart_fields(request)
    image = fields.pop("file:image")
    assert fields == {"prompt": "a robot toy, vinyl toy figure concept, studio product shot, soft shadows",
                      "model": "gpt-image-2.5-sunburst", "n": "2", "size": "1536x1024", "background": "transparent"}
    assert image.read() == encoded("JPEG") and image.mimetype == "image/jpeg"
    assert request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.timeout == (5, 180)


def test_background_is_not_sent_when_not_given(client, redis_client, worker_runtime, openai_ok):
    submit(post(client, encoded("PNG")).get_json()["task_id"])

    assert "background" not in _multipart_fields(openai_ok.last_request)


def test_a_finished_edit_completes_the_task_and_drops_the_upload(client, redis_client, worker_runtime, openai_ok):
    task_id = post(client, encoded("PNG"), n=3).get_json()["task_id"]

    submit(task_id)

    task = store_for(redis_client).get(task_id)
    assert (task.status, task.progress, task.outputs) == ("completed", 100, {"images": 3, "image_format": "PNG"})
    assert task.provider_request_id == "req_abc123"
    assert not redis_client.exists(task_key(task_id, "upload"))
    status = client.get(f"/tasks/{task_id}/status?service=openai").get_json()
    assert status["result_urls"] == [f"http://localhost/tasks/{task_id}/images/{i}" for i in range(3)]
    assert status["result_url"] == status["result_urls"][0] and "b64_json" not in status


def test_images_are_served_in_order_with_their_content_type(client, redis_client, worker_runtime, openai_ok):
    task_id = post(client, encoded("PNG"), n=2).get_json()["task_id"]
    submit(task_id)

    first, second = (client.get(f"/tasks/{task_id}/images/{i}") for i in range(2))

    assert first.status_code == second.status_code == 200
    assert first.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(first.data)).getpixel((0, 0)) == (0, 90, 200)
    assert Image.open(io.BytesIO(second.data)).getpixel((0, 0)) == (40, 90, 200)
    assert client.get(f"/tasks/{task_id}/images/2").status_code == 404


def test_include_b64_json_adds_the_images_inline(client, redis_client, worker_runtime, openai_ok):
    task_id = post(client, encoded("PNG"), n=2).get_json()["task_id"]
    submit(task_id)

    status = client.get(f"/tasks/{task_id}/status?service=openai&include=b64_json").get_json()

    assert [base64.b64decode(item) for item in status["b64_json"]] == [
        client.get(f"/tasks/{task_id}/images/{i}").data for i in range(2)]
    assert client.get(f"/tasks/{task_id}/status?service=openai&include=everything").status_code == 422


def test_images_of_an_unfinished_or_a_model_task_are_not_served(client, redis_client):
    pending = post(client, encoded("PNG")).get_json()["task_id"]
    model = client.post("/generate/text-to-model", json={"prompt": "a cup"}).get_json()["task_id"]

    assert client.get(f"/tasks/{pending}/images/0").status_code == 409
    assert client.get(f"/tasks/{model}/images/0").status_code == 404


# --- OpenAI's errors -------------------------------------------------------------

@pytest.mark.parametrize("status, code, expected", [
    (400, "moderation_blocked", "content_policy"),
    (400, "content_policy_violation", "content_policy"),
    (429, "insufficient_quota", "provider_insufficient_credit"),
    (401, "invalid_api_key", "provider_auth_failed"),
    (403, "unsupported_country_region_territory", "provider_access_denied"),
    (404, "model_not_found", "provider_model_invalid"),
    (400, "invalid_value", "invalid_request"),
])
def test_final_errors_fail_at_once_with_a_code_and_the_request_id(client, redis_client, worker_runtime,
                                                                  requests_mock, status, code, expected):
    requests_mock.post(EDITS_URL, status_code=status, headers={"x-request-id": "req_fail1"},
                       json={"error": {"message": "no", "type": "invalid_request_error", "param": None, "code": code}})
    task_id = post(client, encoded("PNG")).get_json()["task_id"]

    assert submit(task_id) is None

    task = store_for(redis_client).get(task_id)
    assert (task.status, task.error.code) == ("failed", expected)
    assert task.provider_request_id == "req_fail1" and task.provider_error_code == code
    assert requests_mock.call_count == 1 and not redis_client.exists(task_key(task_id, "upload"))


def test_a_rate_limit_waits_honouring_retry_after_ms(client, redis_client, worker_runtime, requests_mock):
    requests_mock.post(EDITS_URL, status_code=429, headers={"retry-after-ms": "4500"},
                       json={"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
    task_id = post(client, encoded("PNG")).get_json()["task_id"]

    delay = submit(task_id)

    task = store_for(redis_client).get(task_id)
    assert delay >= 4.5 and task.status == "pending" and task.submit_faults == 0
    assert redis_client.exists(task_key(task_id, "upload"))  # kept for the retry


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_at_most_twice(client, redis_client, worker_runtime, requests_mock, status):
    requests_mock.post(EDITS_URL, status_code=status, json={"error": {"message": "oops", "type": "server_error"}})
    task_id = post(client, encoded("PNG")).get_json()["task_id"]

    delays = [submit(task_id) for _ in range(4)]

    assert delays[0] is not None and delays[1] is not None and delays[2] is None
    assert requests_mock.call_count == 3
    assert store_for(redis_client).get(task_id).error.code == "provider_unavailable"


@pytest.mark.parametrize("failure", [
    {"exc": requests.exceptions.ReadTimeout("read timed out")},
    {"exc": requests.exceptions.ConnectionError("Connection aborted")},
    {"status_code": 504, "text": "gateway timeout"},
    {"status_code": 200, "json": {"created": 1, "data": []}},
])
def test_an_edit_with_an_unknown_outcome_is_not_resent(client, redis_client, worker_runtime, requests_mock, failure):
    requests_mock.post(EDITS_URL, **failure)
    task_id = post(client, encoded("PNG")).get_json()["task_id"]

    submit(task_id)
    submit(task_id)

    assert store_for(redis_client).get(task_id).error.code == "provider_outcome_unknown"
    assert requests_mock.call_count == 1
