"""The OpenAI image edits stand-in, exercised over real HTTP with multipart the way the
project's client talks to OpenAI."""

import base64
import io
import itertools
import re
import time

import pytest
import requests
from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat

import sandbox.openai
from sandbox.app import create_sandbox_app
from sandbox.openai import create_openai_app
from sandbox.server import serve_in_thread

FIELDS = {"prompt": "turn it into a clay figurine", "model": "gpt-image-2"}
INVALID = "invalid_request_error"
REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def picture(width: int = 320, height: int = 240, kind: str = "PNG") -> bytes:
    """A gradient with a disc: enough structure that a crop, posterize or tint shows."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line((0, y, width, y), fill=(255 * y // height, 120, 255 - 255 * y // height))
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(250, 210, 40))
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def one_image(data: bytes = None, name: str = "chair.png", content_type: str = "image/png"):
    return {"image": (name, picture() if data is None else data, content_type)}


def decoded(response) -> list[Image.Image]:
    assert response.status_code == 200, response.text
    return [Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
            for item in response.json()["data"]]


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per RGB channel, 0..255."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def error(status_code: int, code, message: str, param=None, type: str = INVALID):
    """The expected answer, as (status, body)."""
    return status_code, {"error": {"message": message, "type": type, "param": param, "code": code}}


def assert_answer(response, expected) -> None:
    assert (response.status_code, response.json()) == expected
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])


# --- auth -----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "sk-test"},
])
def test_bad_or_missing_key_is_401(openai, headers):
    response = requests.post(openai.url, data=FIELDS, files=one_image(), headers=headers, timeout=5)
    message = ("Incorrect API key provided. You can find your API key at "
               "https://platform.openai.com/account/api-keys.")
    assert_answer(response, error(401, "invalid_api_key", message))
    assert openai.sandbox.processed == []


# --- successful edits ------------------------------------------------------------


def test_edit_returns_n_transformed_images_of_the_size(openai):
    response = openai.edit(one_image(), **FIELDS, n="3", size="1536x1024", quality="high")
    images = decoded(response)
    body = response.json()
    assert body["created"] == int(openai.clock())
    assert {key: body[key] for key in ("background", "output_format", "quality", "size")} == {
        "background": "opaque", "output_format": "png", "quality": "high", "size": "1536x1024"}
    assert body["usage"]["output_tokens"] > 0
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
    assert [(image.format, image.size) for image in images] == [("PNG", (1536, 1024))] * 3

    source = Image.open(io.BytesIO(picture()))
    for plain in (ImageOps.fit(source, (1536, 1024)), source.resize((1536, 1024))):
        assert all(difference(image, plain) > 20 for image in images)
    assert all(difference(a, b) > 20 for a, b in itertools.combinations(images, 2))
    assert len(openai.sandbox.processed) == 1


def test_defaults_are_one_square_png(openai):
    response = openai.edit(one_image(picture(kind="JPEG"), "chair.jpg", "image/jpeg"), **FIELDS)
    [image] = decoded(response)
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert response.json()["size"] == "1024x1024"


@pytest.mark.parametrize("output_format, background, pil_format, alpha", [
    ("jpeg", "opaque", "JPEG", False),
    ("webp", "auto", "WEBP", False),
    ("webp", "transparent", "WEBP", True),
    ("png", "transparent", "PNG", True),
])
def test_output_format_and_background(openai, output_format, background, pil_format, alpha):
    response = openai.edit(one_image(), **FIELDS, size="1024x1536",
                           output_format=output_format, background=background)
    [image] = decoded(response)
    assert (image.format, image.size) == (pil_format, (1024, 1536))
    assert (image.mode == "RGBA") is alpha
    if alpha:
        assert image.getpixel((0, 0))[3] == 0 and image.getpixel((512, 768))[3] == 255


def test_several_image_parts_are_all_used_and_recorded(openai):
    parts = [("front.png", picture(), "image/png"),
             ("side.jpg", picture(200, 300, "JPEG"), "image/jpeg"),
             ("back.webp", picture(kind="WEBP"), "image/webp")]
    response = openai.edit([("image[]", part) for part in parts], **FIELDS)
    decoded(response)
    [recorded] = openai.sandbox.requests
    assert recorded.files == [("image[]", name, kind, len(data)) for name, data, kind in parts]
    assert openai.sandbox.processed == [recorded]


def test_request_is_recorded_with_fields_and_headers(openai):
    openai.edit(one_image(), **FIELDS, n="2", size="auto")
    [recorded] = openai.sandbox.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/images/edits")
    assert recorded.form == {**FIELDS, "n": "2", "size": "auto"}
    assert "response_format" not in recorded.form
    assert recorded.files == [("image", "chair.png", "image/png", len(picture()))]
    assert recorded.headers["Authorization"] == "Bearer sk-test"
    assert recorded.headers["Content-Type"].startswith("multipart/form-data; boundary=")


def test_prompt_of_exactly_32000_characters_is_accepted(openai):
    decoded(openai.edit(one_image(), **{**FIELDS, "prompt": "x" * 32000}))


@pytest.mark.parametrize("model", ["gpt-image-2.5-sunburst", "gpt-image-2.5-flare"])
def test_the_newer_models_are_known(openai, model):
    decoded(openai.edit(one_image(), **{**FIELDS, "model": model}))


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize("fields, expected", [
    ({"response_format": "b64_json"},
     error(400, "unknown_parameter", "Unknown parameter: 'response_format'.", "response_format")),
    ({"user": "someone"}, error(400, "unknown_parameter", "Unknown parameter: 'user'.", "user")),
    ({"model": None}, error(400, "missing_required_parameter",
                            "Missing required parameter: 'model'.", "model")),
    ({"model": "gpt-image-1"}, error(404, "model_not_found", "The model 'gpt-image-1' has been "
                                     "shut down. Use one of: gpt-image-2, gpt-image-2.5-sunburst, "
                                     "gpt-image-2.5-flare.")),
    ({"model": "dall-e-2"}, error(404, "model_not_found", "The model 'dall-e-2' does not exist or "
                                  "you do not have access to it.")),
    ({"prompt": None}, error(400, "missing_required_parameter",
                             "Missing required parameter: 'prompt'.", "prompt")),
    ({"prompt": "x" * 32001}, error(400, "string_above_max_length", "Invalid 'prompt': string too "
                                    "long. Expected a string with maximum length 32000, but got a "
                                    "string with length 32001 instead.", "prompt")),
    ({"n": "two"}, error(400, "invalid_type", "Invalid type for 'n': expected an integer, but got "
                         "'two' instead.", "n")),
    ({"n": "0"}, error(400, "integer_below_min_value", "Invalid 'n': integer below minimum value. "
                       "Expected a value >= 1, but got 0 instead.", "n")),
    ({"n": "11"}, error(400, "integer_above_max_value", "Invalid 'n': integer above maximum value. "
                        "Expected a value <= 10, but got 11 instead.", "n")),
    ({"size": "512x512"}, error(400, "invalid_value", "Invalid value: '512x512'. Supported values "
                                "are: '1024x1024', '1536x1024', '1024x1536', and 'auto'.", "size")),
    ({"quality": "ultra"}, error(400, "invalid_value", "Invalid value: 'ultra'. Supported values "
                                 "are: 'low', 'medium', 'high', and 'auto'.", "quality")),
    ({"background": "white"}, error(400, "invalid_value", "Invalid value: 'white'. Supported "
                                    "values are: 'transparent', 'opaque', and 'auto'.",
                                    "background")),
    ({"output_format": "gif"}, error(400, "invalid_value", "Invalid value: 'gif'. Supported values "
                                     "are: 'png', 'jpeg', and 'webp'.", "output_format")),
    ({"background": "transparent", "output_format": "jpeg"},
     error(400, "invalid_value", "Invalid value: 'transparent'. A transparent background needs "
           "output_format 'png' or 'webp'.", "background")),
])
def test_field_validation(openai, fields, expected):
    sent = {name: value for name, value in {**FIELDS, **fields}.items() if value is not None}
    assert_answer(openai.edit(one_image(), **sent), expected)
    assert openai.sandbox.processed == []


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 0, 0)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize("files, expected", [
    ({}, error(400, "missing_required_parameter", "Missing required parameter: 'image'.", "image")),
    (one_image(b"not an image", "notes.txt", "text/plain"),
     error(400, "invalid_image_format",
           "Invalid 'image': 'notes.txt' is not a PNG, WEBP or JPEG image.", "image")),
    (one_image(gif(), "a.gif", "image/gif"),
     error(400, "invalid_image_format",
           "Invalid 'image': 'a.gif' is not a PNG, WEBP or JPEG image.", "image")),
    (one_image(picture()[:200], "cut.png"),
     error(400, "invalid_image_format",
           "Invalid 'image': 'cut.png' is not a PNG, WEBP or JPEG image.", "image")),
    ([("image[]", ("v.png", picture(16, 16), "image/png"))] * 17,
     error(400, "array_above_max_length", "Invalid 'image': array too long. Expected an array with "
           "maximum length 16, but got an array with length 17 instead.", "image")),
    ({**one_image(), "mask": ("mask.png", picture(), "image/png")},
     error(400, "unknown_parameter", "Unknown parameter: 'mask'.", "mask")),
])
def test_image_validation(openai, files, expected):
    assert_answer(openai.edit(files, **FIELDS), expected)
    assert openai.sandbox.processed == []


def test_images_must_be_under_the_size_limit(openai, monkeypatch):
    data = picture()
    monkeypatch.setattr(sandbox.openai, "MAX_IMAGE_BYTES", len(data))
    expected = error(400, "image_too_large", f"Invalid 'image': 'chair.png' is {len(data)} bytes; "
                     "each image must be under 50 MB.", "image")
    assert_answer(openai.edit(one_image(data), **FIELDS), expected)
    monkeypatch.setattr(sandbox.openai, "MAX_IMAGE_BYTES", len(data) + 1)
    decoded(openai.edit(one_image(data), **FIELDS))


@pytest.mark.parametrize("prompt", ["a forbidden castle", "FORBIDDEN"])
def test_the_forbidden_trigger_is_refused_by_moderation(openai, prompt):
    response = openai.edit(one_image(), **{**FIELDS, "prompt": prompt})
    request_id = response.headers["x-request-id"]
    message = ("Your request was rejected by the safety system. If you believe this is an error, "
               f"contact us at help.openai.com and include the request ID {request_id}.")
    assert_answer(response, error(400, "moderation_blocked", message,
                                  type="image_generation_user_error"))
    assert openai.sandbox.processed == []


def test_unknown_paths_answer_in_the_error_shape(openai):
    response = openai.http.post(openai.server.base_url + "/v1/images/generations/abc", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == INVALID
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])


# --- misbehaving on demand ---------------------------------------------------------


def test_fail_next_rate_limit_with_retry_headers_then_recovers(openai):
    headers = {"retry-after-ms": "1500", "retry-after": "2"}
    openai.sandbox.fail_next(429, "rate_limit_exceeded", "Rate limit reached for images per "
                             "minute.", headers=headers, times=2)
    for _ in range(2):
        response = openai.edit(one_image(), **FIELDS)
        assert_answer(response, error(429, "rate_limit_exceeded",
                                      "Rate limit reached for images per minute.", type="requests"))
        assert {name: response.headers[name] for name in headers} == headers
    decoded(openai.edit(one_image(), **FIELDS))
    assert len(openai.sandbox.requests) == 3 and len(openai.sandbox.processed) == 1


@pytest.mark.parametrize("arguments, expected", [
    ({}, error(500, None, sandbox.openai.SERVER_ERROR_MESSAGE, type="server_error")),
    ({"status": 503, "code": None, "message": "Overloaded."},
     error(503, None, "Overloaded.", type="server_error")),
    ({"status": 429, "code": "insufficient_quota", "message": "You exceeded your quota.",
      "type": "insufficient_quota"},
     error(429, "insufficient_quota", "You exceeded your quota.", type="insufficient_quota")),
    ({"status": 403, "code": "unsupported_country_region_territory",
      "message": "Country, region, or territory not supported"},
     error(403, "unsupported_country_region_territory",
           "Country, region, or territory not supported", type="request_forbidden")),
])
def test_fail_next_shapes(openai, arguments, expected):
    openai.sandbox.fail_next(**arguments)
    assert_answer(openai.edit(one_image(), **FIELDS), expected)


@pytest.mark.parametrize("after_processing, processed", [(False, 0), (True, 1)])
def test_drop_next_closes_the_connection(openai, after_processing, processed):
    openai.sandbox.drop_next(after_processing=after_processing)
    with pytest.raises(requests.exceptions.ConnectionError):
        openai.edit(one_image(), **FIELDS)
    assert len(openai.sandbox.requests) == 1
    assert len(openai.sandbox.processed) == processed
    decoded(openai.edit(one_image(), **FIELDS))  # the next request is served normally


def test_delay_next_causes_a_read_timeout_and_reset_releases_it(openai):
    openai.sandbox.delay_next(seconds=30)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        openai.http.post(openai.url, data=FIELDS, files=one_image(), timeout=0.5)
    assert len(openai.sandbox.processed) == 1  # the edit ran: a retry would be billed again
    openai.sandbox.reset()
    decoded(openai.edit(one_image(), **FIELDS))
    assert time.monotonic() - started < 3


def test_latency_holds_every_successful_edit():
    server = serve_in_thread(create_openai_app(latency_seconds=0.3))
    try:
        started = time.monotonic()
        response = requests.post(server.base_url + "/v1/images/edits", data=FIELDS,
                                 files=one_image(), timeout=5,
                                 headers={"Authorization": "Bearer sk-sandbox"})
        assert response.status_code == 200 and time.monotonic() - started >= 0.3
    finally:
        server.shutdown()


def test_sandbox_app_mounts_openai_next_to_tripo():
    server = serve_in_thread(create_sandbox_app(tripo_api_key="tsk_x", openai_latency_seconds=0))
    try:
        edit = requests.post(server.base_url + "/openai/v1/images/edits", data=FIELDS,
                             files=one_image(), timeout=5,
                             headers={"Authorization": "Bearer sk-sandbox"})
        balance = requests.get(server.base_url + "/tripo/v3/account/balance", timeout=5,
                               headers={"Authorization": "Bearer tsk_x"})
        assert (edit.status_code, balance.status_code) == (200, 200)
    finally:
        server.shutdown()
