"""The Tripo stand-in, exercised over real HTTP the way the project's client talks to Tripo."""

import io
import json
import struct
import time
import uuid

import pytest
import requests
import trimesh

from sandbox import assets
from sandbox.server import serve_in_thread
from sandbox.tripo import create_tripo_app

TEXT = "/generation/text-to-model"
IMAGE = "/generation/image-to-model"
MULTIVIEW = "/generation/multiview-to-model"
RETEXTURE = "/models/texture"
IMAGE_URL = "https://images.example/front.png"


def assert_error(response, status: int, code: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"] and body["suggestion"]
    assert str(uuid.UUID(body["request_id"])) == body["request_id"]
    return body


def download(url: str):
    return requests.get(url, timeout=5)  # output URLs are fetched with no Authorization


# --- auth and envelope ----------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer tsk_wrong"}, {"Authorization": "tsk_test"},
])
def test_bad_or_missing_key_is_401_1002(tripo, headers):
    response = requests.get(tripo.api + "/account/balance", headers=headers, timeout=5)
    body = assert_error(response, 401, 1002)
    assert response.headers["X-Tripo-Trace-ID"] == body["request_id"]


def test_bad_key_creates_nothing(tripo):
    response = requests.post(tripo.api + TEXT, json={"prompt": "x", "model": "v3.1-20260211"},
                             headers={"Authorization": "Bearer nope"}, timeout=5)
    assert response.status_code == 401
    assert tripo.sandbox.tasks == {}


def test_balance(tripo):
    expected = {"code": 0, "data": {"balance": 1000.0, "frozen": 0.0}}
    assert tripo.get("/account/balance").json() == expected


def test_requests_are_recorded_with_body_and_headers(tripo):
    tripo.get("/account/balance")
    tripo.create_text(texture=False, pbr=False)
    first, second = tripo.sandbox.requests
    assert (first.method, first.path, first.json) == ("GET", "/v3/account/balance", None)
    method, path, body, headers = second
    assert (method, path) == ("POST", "/v3" + TEXT)
    assert body == {"prompt": "a small wooden chair", "model": "v3.1-20260211",
                    "texture": False, "pbr": False}
    assert headers["Authorization"] == "Bearer tsk_test"
    assert tripo.sandbox.creates() == [second]


# --- creating tasks -------------------------------------------------------------


def test_text_to_model_creates_a_queued_task(tripo):
    body = {"prompt": "a chair", "model": "P1-20260311", "texture_quality": "detailed"}
    response = tripo.post(TEXT, body)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 0
    task_id = body["data"]["task_id"]
    uuid.UUID(task_id)
    assert tripo.sandbox.tasks[task_id].type == "text_to_model"


@pytest.mark.parametrize("body, code", [
    ({"prompt": "a chair"}, 1004),
    ({"prompt": "a chair", "model": 31}, 1004),
    ({"prompt": "a chair", "model": "v9.9-20990101"}, 2015),
    ({"prompt": "a chair", "model": "v3.5-20260815"}, 2015),  # a re-texture-only version
    ({"model": "v3.1-20260211"}, 1004),
    ({"prompt": "   ", "model": "v3.1-20260211"}, 1004),
    ({"prompt": "x" * 1025, "model": "v3.1-20260211"}, 1004),
    ({"prompt": "a chair \U0001F600", "model": "v3.1-20260211"}, 1004),
    ({"prompt": "a chair", "model": "v3.1-20260211", "texture": "yes"}, 1004),
    ({"prompt": "a chair", "model": "v3.1-20260211", "texture_quality": "ultra"}, 1004),
])
def test_text_to_model_validation(tripo, body, code):
    assert_error(tripo.post(TEXT, body), 400, code)
    assert tripo.sandbox.tasks == {}


def test_prompt_of_exactly_1024_characters_is_accepted(tripo):
    tripo.create_text(prompt="x" * 1024)


@pytest.mark.parametrize("key", ["quad", "smart_low_poly", "generate_parts", "geometry_quality"])
def test_p1_rejects_options_even_when_false(tripo, key):
    body = {"prompt": "a chair", "model": "P1-20260311", key: False}
    assert_error(tripo.post(TEXT, body), 400, 1004)
    assert tripo.post(TEXT, {**body, "model": "v3.1-20260211"}).status_code == 200


def test_non_json_body_is_1004(tripo):
    response = tripo.http.post(tripo.api + TEXT, data="prompt=chair", timeout=5,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(response, 400, 1004)


@pytest.mark.parametrize("image_input", [
    IMAGE_URL, "http://127.0.0.1:9/upload.png", f"file_{uuid.uuid4()}", str(uuid.uuid4()),
])
def test_image_to_model_accepts_urls_file_tokens_and_task_ids(tripo, image_input):
    response = tripo.post(IMAGE, {"input": image_input, "model": "v3.0-20250812"})
    assert response.status_code == 200, response.text
    assert tripo.sandbox.tasks[response.json()["data"]["task_id"]].type == "image_to_model"


@pytest.mark.parametrize("body, code", [
    ({"input": "data:image/png;base64,iVBORw0KGgo=", "model": "v3.0-20250812"}, 1004),
    ({"input": "ftp://host/a.png", "model": "v3.0-20250812"}, 1004),
    ({"input": "", "model": "v3.0-20250812"}, 1004),
    ({"input": {"url": IMAGE_URL}, "model": "v3.0-20250812"}, 1004),
    ({"model": "v3.0-20250812"}, 1004),
    ({"input": IMAGE_URL}, 1004),
    ({"input": IMAGE_URL, "model": "v1"}, 2015),
])
def test_image_to_model_validation(tripo, body, code):
    assert_error(tripo.post(IMAGE, body), 400, code)


def test_multiview_to_model_with_two_views(tripo):
    response = tripo.post(MULTIVIEW, {"inputs": [IMAGE_URL, None, f"file_{uuid.uuid4()}", None],
                                      "model": "v3.1-20260211", "texture": True})
    assert response.status_code == 200, response.text
    assert tripo.sandbox.tasks[response.json()["data"]["task_id"]].type == "multiview_to_model"


@pytest.mark.parametrize("inputs", [
    [IMAGE_URL, IMAGE_URL, IMAGE_URL],
    [IMAGE_URL, IMAGE_URL, IMAGE_URL, IMAGE_URL, IMAGE_URL],
    [None, IMAGE_URL, IMAGE_URL, IMAGE_URL],
    ["", IMAGE_URL, None, None],
    [IMAGE_URL, None, None, None],
    [IMAGE_URL, "", IMAGE_URL, None],  # a missing view is null, not ""
    [IMAGE_URL, {}, IMAGE_URL, None],
    [IMAGE_URL, "data:image/png;base64,AAAA", None, None],
    IMAGE_URL,
])
def test_multiview_to_model_validation(tripo, inputs):
    assert_error(tripo.post(MULTIVIEW, {"inputs": inputs, "model": "v3.1-20260211"}), 400, 1004)


def test_retexture_of_a_finished_model(tripo):
    source = tripo.finished_task(texture=False, pbr=False)["task_id"]
    body = {"input": source, "model": "v3.5-20260815", "texture": True, "pbr": True,
            "texture_quality": "detailed"}
    response = tripo.post(RETEXTURE, body)
    assert response.status_code == 200, response.text
    task = tripo.sandbox.tasks[response.json()["data"]["task_id"]]
    assert (task.type, task.textured) == ("texture_model", True)


@pytest.mark.parametrize("model, code", [
    ("v3.1-20260211", 2015), ("P1-20260311", 2015), (None, 1004),
])
def test_retexture_model_versions(tripo, model, code):
    source = tripo.finished_task()["task_id"]
    body = {"input": source, "texture": True, **({"model": model} if model else {})}
    assert_error(tripo.post(RETEXTURE, body), 400, code)


def test_retexture_of_unknown_or_unfinished_task_is_1004(tripo):
    unfinished = tripo.create_text()
    for source in (str(uuid.uuid4()), unfinished, ["not", "an", "id"]):
        assert_error(tripo.post(RETEXTURE, {"input": source, "model": "v3.0-20250812"}), 400, 1004)


# --- reading tasks --------------------------------------------------------------


def test_lifecycle_follows_the_clock(tripo):
    task_id = tripo.create_text()
    queued = tripo.task(task_id)
    assert (queued["status"], queued["progress"], queued["output"]) == ("queued", 0, {})
    assert queued["type"] == "text_to_model" and queued["created_at"].endswith("Z")
    assert "completed_at" not in queued and "credits_consumed" not in queued

    progress = []
    for _ in range(4):
        tripo.clock.advance(tripo.sandbox.task_seconds / 5)
        running = tripo.task(task_id)
        assert running["status"] == "running" and running["output"] == {}
        progress.append(running["progress"])
    assert progress == sorted(set(progress)) and 0 <= progress[0] and progress[-1] <= 99

    tripo.clock.advance(tripo.sandbox.task_seconds / 5)
    done = tripo.task(task_id)
    assert (done["status"], done["progress"]) == ("success", 100)
    assert done["output"]["model_url"].split("?")[0].endswith(".glb")
    assert done["output"]["rendered_image_url"].split("?")[0].endswith(".png")
    assert done["completed_at"] > done["created_at"] and done["credits_consumed"] > 0


def test_unknown_task_is_404_2001(tripo):
    assert_error(tripo.get(f"/tasks/{uuid.uuid4()}"), 404, 2001)


def test_list_returns_found_and_missed(tripo):
    done = tripo.finished_task()["task_id"]
    fresh = tripo.create_text()
    missing = str(uuid.uuid4())
    response = tripo.post("/tasks/list", {"task_ids": [done, fresh, missing]})
    data = response.json()["data"]
    assert set(data["tasks"]) == {done, fresh} and data["missed"] == [missing]
    assert data["tasks"][done]["status"] == "success" and data["tasks"][fresh]["status"] == "queued"


@pytest.mark.parametrize("count, status", [(0, 400), (100, 200), (101, 400)])
def test_list_takes_1_to_100_ids(tripo, count, status):
    response = tripo.post("/tasks/list", {"task_ids": [str(uuid.uuid4()) for _ in range(count)]})
    assert response.status_code == status
    if status == 400:
        assert_error(response, 400, 1004)
    else:
        assert len(response.json()["data"]["missed"]) == 100


# --- output files ---------------------------------------------------------------


def load_single_mesh(glb: bytes) -> trimesh.Trimesh:
    """Parse with a real glTF loader: proves the file is a valid GLB with one mesh."""
    scene = trimesh.load(io.BytesIO(glb), file_type="glb", force="scene")
    assert len(scene.geometry) == 1
    return next(iter(scene.geometry.values()))


def glb_chunks(glb: bytes) -> tuple[dict, bytes]:
    """The JSON and BIN chunks of a GLB (texture checks need the raw JSON: trimesh
    decodes images only when Pillow is installed)."""
    magic, version, length = struct.unpack_from("<4sII", glb, 0)
    assert (magic, version, length) == (b"glTF", 2, len(glb))
    json_length, _ = struct.unpack_from("<II", glb, 12)
    gltf = json.loads(glb[20:20 + json_length])
    binary_length, _ = struct.unpack_from("<II", glb, 20 + json_length)
    binary_start = 28 + json_length
    return gltf, glb[binary_start:binary_start + binary_length]


@pytest.mark.parametrize("options, textured", [
    ({}, True),
    ({"texture": False, "pbr": False}, False),
    ({"texture": False}, True),  # pbr defaults to true and forces texture on
    ({"texture": True, "pbr": False}, True),
])
def test_model_file_is_a_glb_textured_as_asked(tripo, options, textured):
    output = tripo.finished_task(**options)["output"]
    response = download(output["model_url"])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "model/gltf-binary"
    mesh = load_single_mesh(response.content)
    assert len(mesh.faces) == 12  # a cube: six faces of two triangles
    gltf, binary = glb_chunks(response.content)
    material = gltf["materials"][0]["pbrMetallicRoughness"]
    assert bool(gltf.get("images")) is textured
    assert ("baseColorTexture" in material) is textured
    if textured:
        view = gltf["bufferViews"][gltf["images"][0]["bufferView"]]
        image = binary[view.get("byteOffset", 0):view.get("byteOffset", 0) + view["byteLength"]]
        assert image.startswith(assets.PNG_SIGNATURE)


def test_retextured_model_is_textured(tripo):
    source = tripo.finished_task(texture=False, pbr=False)["task_id"]
    response = tripo.post(RETEXTURE, {"input": source, "model": "v3.0-20250812"})
    task_id = response.json()["data"]["task_id"]
    tripo.clock.advance(tripo.sandbox.task_seconds)
    model = download(tripo.task(task_id)["output"]["model_url"]).content
    load_single_mesh(model)
    assert glb_chunks(model)[0]["images"]


def test_preview_is_a_png(tripo):
    response = download(tripo.finished_task()["output"]["rendered_image_url"])
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(assets.PNG_SIGNATURE)


def test_urls_expire_and_a_new_read_signs_them_again(tripo):
    task = tripo.finished_task()
    tripo.clock.advance(tripo.sandbox.url_ttl_seconds)
    assert download(task["output"]["model_url"]).status_code == 200
    tripo.clock.advance(1)
    expired = download(task["output"]["model_url"])
    assert expired.status_code == 403 and b"<Error>" in expired.content
    assert download(tripo.task(task["task_id"])["output"]["model_url"]).status_code == 200


def test_tampered_urls_are_403(tripo):
    output = tripo.finished_task()["output"]
    model_path, signed_query = output["model_url"].split("?")
    preview_query = output["rendered_image_url"].split("?")[1]
    assert download(f"{model_path}?{preview_query}").status_code == 403
    assert download(model_path).status_code == 403
    assert download(f"{model_path}?{signed_query[:-4]}beef").status_code == 403


# --- misbehaving on demand -----------------------------------------------------


def test_fail_next_answers_the_error_then_recovers(tripo):
    tripo.sandbox.fail_next(TEXT, status=429, code=2000, message="Too many tasks.",
                            headers={"Retry-After": "2"}, times=2)
    for _ in range(2):
        response = tripo.post(TEXT, {"prompt": "a chair", "model": "v3.1-20260211"})
        assert_error(response, 429, 2000)
        assert response.headers["Retry-After"] == "2"
    assert tripo.sandbox.tasks == {}
    assert tripo.get("/account/balance").status_code == 200  # other paths are unaffected
    tripo.create_text()
    assert len(tripo.sandbox.creates()) == 3


def test_fail_next_defaults_to_a_500(tripo):
    tripo.sandbox.fail_next("/tasks/list")
    assert_error(tripo.post("/tasks/list", {"task_ids": ["x"]}), 500, 1001)


@pytest.mark.parametrize("after_processing, tasks_created", [(False, 0), (True, 1)])
def test_drop_next_closes_the_connection(tripo, after_processing, tasks_created):
    tripo.sandbox.drop_next(TEXT, after_processing=after_processing)
    with pytest.raises(requests.exceptions.ConnectionError):
        tripo.post(TEXT, {"prompt": "a chair", "model": "v3.1-20260211"})
    assert len(tripo.sandbox.tasks) == tasks_created
    assert len(tripo.sandbox.creates()) == 1
    tripo.create_text()  # the next request is served normally


def test_delay_next_causes_a_read_timeout_and_reset_releases_it(tripo):
    tripo.sandbox.delay_next("/account/balance", seconds=30)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        tripo.http.get(tripo.api + "/account/balance", timeout=0.2)
    tripo.sandbox.reset()
    assert tripo.get("/account/balance").status_code == 200
    assert time.monotonic() - started < 2


def test_set_outcome_failed(tripo):
    task_id = tripo.create_text()
    tripo.sandbox.set_outcome(task_id, "failed", error_code=2008, error_message="Refused.")
    tripo.clock.advance(tripo.sandbox.task_seconds / 2)
    assert tripo.task(task_id)["status"] == "running"
    tripo.clock.advance(tripo.sandbox.task_seconds)
    task = tripo.task(task_id)
    outcome = (task["status"], task["error_code"], task["error_message"])
    assert outcome == ("failed", 2008, "Refused.")
    assert task["output"] == {} and "completed_at" in task and "credits_consumed" not in task


@pytest.mark.parametrize("status", ["cancelled", "banned", "expired"])
def test_set_outcome_other_terminal_statuses_have_default_errors(tripo, status):
    tripo.sandbox.set_outcome(None, status)
    task = tripo.finished_task()
    assert task["status"] == status
    assert isinstance(task["error_code"], int) and task["error_message"]


def test_set_outcome_stall_for_the_next_task_then_complete_now(tripo):
    tripo.sandbox.set_outcome(None, "stall")
    stalled = tripo.create_text()
    normal = tripo.create_text()
    tripo.clock.advance(tripo.sandbox.task_seconds * 10)
    task = tripo.task(stalled)
    assert (task["status"], task["progress"], task["output"]) == ("running", 99, {})
    assert tripo.task(normal)["status"] == "success"
    tripo.sandbox.complete_now(stalled)
    assert tripo.task(stalled)["status"] == "success"


def test_complete_now_ends_a_fresh_task(tripo):
    task_id = tripo.create_text()
    tripo.sandbox.complete_now(task_id)
    assert tripo.task(task_id)["status"] == "success"


def test_set_outcome_rejects_unknown_statuses(tripo):
    with pytest.raises(ValueError):
        tripo.sandbox.set_outcome(None, "success")


# --- assets and server ----------------------------------------------------------


def test_assets_are_cached_and_deterministic():
    assert assets.textured_glb() is assets.textured_glb()
    assert assets.plain_glb() == assets._cube_glb(textured=False)


def test_shutdown_is_prompt_with_a_response_still_delayed():
    app = create_tripo_app(api_key="tsk_x")
    server = serve_in_thread(app)
    app.extensions["tripo_sandbox"].delay_next("/account/balance", seconds=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.base_url + "/v3/account/balance", timeout=0.2,
                     headers={"Authorization": "Bearer tsk_x"})
    started = time.monotonic()
    server.shutdown()
    assert time.monotonic() - started < 1
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.base_url + "/v3/account/balance", timeout=1)
