"""End to end over real HTTP: the BFF's web and worker code against the Tripo stand-in,
on Redis, through a real Dramatiq worker. Each way the stand-in can misbehave has a test
that shows what the app then sees."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from urllib.parse import urlparse

import pytest
import requests
import trimesh

from bff.tasks.model_formats import CONTENT_TYPES
from bff.tasks.store import task_key
from tests.conftest import wait_until
from tests.helpers import store_for
from tests.workers.tripo_standin import (
    TASK_SECONDS,
    download,
    point_workers_at,
    status_of,
    submit,
    wait_for_status,
    wait_for_submission,
)

TEXT = "/generation/text-to-model"
def gltf_json(glb: bytes) -> dict:
    json_length = struct.unpack_from("<I", glb, 12)[0]
    return json.loads(glb[20:20 + json_length])


@pytest.mark.parametrize("texture", [True, False])
def test_a_model_is_generated_and_downloads_as_a_valid_glb(client, redis_client, worker, stand_in, texture):
    task_id = submit(client, texture=texture)
    wait_for_submission(redis_client, task_id)
    stand_in.clock.now += TASK_SECONDS / 2
    running = wait_for_status(client, task_id, "processing")
    assert 0 < running["progress"] < 100
    stand_in.finish_all()
    wait_for_status(client, task_id, "completed")

    model = download(client, f"/tasks/{task_id}/result")
    preview = download(client, f"/tasks/{task_id}/preview")

    assert model.status_code == 200 and model.headers["Content-Type"] == "model/gltf-binary"
    scene = trimesh.load(io.BytesIO(model.content), file_type="glb", force="scene")
    assert len(scene.geometry) == 1
    assert bool(gltf_json(model.content).get("images")) is texture
    assert preview.content.startswith(b"\x89PNG")
    assert len(stand_in.control.creates()) == 1


def test_a_stale_provider_link_is_replaced_by_a_fresh_one(client, redis_client, worker, stand_in):
    task_id = submit(client)
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()
    wait_for_status(client, task_id, "completed")
    old_url = client.get(f"/tasks/{task_id}/result").headers["Location"]
    stand_in.clock.now += 301  # Tripo's signed URLs have expired
    assert requests.get(old_url, timeout=5).status_code == 403

    redis_client.delete(task_key(task_id, "urls"))  # the BFF's copy has expired too
    fresh = download(client, f"/tasks/{task_id}/result")

    assert fresh.status_code == 200 and fresh.content.startswith(b"glTF")


def test_a_wrong_key_fails_the_task_for_the_operator(client, redis_client, worker, stand_in, settings):
    point_workers_at(settings, stand_in.url, tripo_api_key="tsk_wrong")
    task_id = submit(client)

    failed = wait_for_status(client, task_id, "failed")

    assert failed["error"]["code"] == "provider_auth_failed"
    assert "tsk_wrong" not in json.dumps(failed)


def test_a_retired_model_version_fails_with_model_invalid(client, redis_client, worker, stand_in, settings):
    point_workers_at(settings, stand_in.url, tripo_model_version="v2.0-20240919")
    task_id = submit(client)

    assert wait_for_status(client, task_id, "failed")["error"]["code"] == "provider_model_invalid"
    assert store_for(redis_client).get(task_id).provider_error_code == "2015"


@pytest.mark.parametrize("code, expected", [(2008, "content_policy"), (2010, "provider_insufficient_credit"),
                                            (1004, "invalid_request")])
def test_a_refused_create_fails_at_once_with_its_code(client, redis_client, worker, stand_in, code, expected):
    stand_in.control.fail_next(TEXT, status=400, code=code, message="refused")
    task_id = submit(client)

    failed = wait_for_status(client, task_id, "failed")

    assert failed["error"]["code"] == expected
    assert store_for(redis_client).get(task_id).provider_request_id  # kept for Tripo support
    assert len(stand_in.control.creates()) == 1


def test_a_429_makes_the_task_wait_then_it_completes(client, redis_client, worker, stand_in):
    stand_in.control.fail_next(TEXT, status=429, code=2000, message="too many tasks", headers={"Retry-After": "1"})
    task_id = submit(client)

    assert status_of(client, task_id)["status"] == "pending"
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()
    wait_for_status(client, task_id, "completed")

    assert len(stand_in.control.creates()) == 2 and len(stand_in.control.tasks) == 1


@pytest.mark.parametrize("misbehave", [
    lambda control: control.fail_next(TEXT, status=500, code=1001, message="server error"),
    lambda control: control.drop_next(TEXT, after_processing=True),
    lambda control: control.drop_next(TEXT, after_processing=False),
    lambda control: control.delay_next(TEXT, seconds=3),
])
def test_an_ambiguous_create_fails_as_unknown_and_is_never_resent(client, redis_client, worker, stand_in, misbehave):
    misbehave(stand_in.control)
    task_id = submit(client)

    failed = wait_for_status(client, task_id, "failed")

    assert failed["error"]["code"] == "provider_outcome_unknown"
    assert len(stand_in.control.creates()) == 1


@pytest.mark.parametrize("outcome, code", [("failed", "provider_failed"), ("banned", "content_policy"),
                                           ("cancelled", "provider_cancelled"), ("expired", "provider_expired")])
def test_a_task_that_fails_at_tripo_fails_with_a_stable_code(client, redis_client, worker, stand_in, outcome, code):
    stand_in.control.set_outcome(None, outcome)
    task_id = submit(client)
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()

    assert wait_for_status(client, task_id, "failed")["error"]["code"] == code


def test_a_task_that_stalls_at_99_fails_at_its_deadline(client, redis_client, worker, stand_in, settings):
    stand_in.control.set_outcome(None, "stall")
    point_workers_at(settings, stand_in.url, bff_task_deadline_seconds=1.0)
    task_id = submit(client)
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()
    wait_until(lambda: status_of(client, task_id)["progress"] == 99)

    failed = wait_for_status(client, task_id, "failed")

    assert failed["error"]["code"] == "timeout"


PHOTO = "https://cdn.makeit3d.app/photos/{}.jpg"


def run_to_completion(client, redis_client, stand_in, path: str, body: dict) -> str:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["task_id"]
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()
    wait_for_status(client, task_id, "completed")
    assert download(client, f"/tasks/{task_id}/result").content.startswith(b"glTF")
    return task_id


@pytest.mark.parametrize("path, body, tripo_type", [
    ("/generate/sketch-to-model", {"image_url": PHOTO.format("sketch")}, "image_to_model"),
    ("/generate/image-to-model", {"image_urls": [PHOTO.format("front")]}, "image_to_model"),
    ("/generate/image-to-model", {"image_urls": [PHOTO.format("front"), None, PHOTO.format("back")]},
     "multiview_to_model"),
])
def test_image_endpoints_run_to_a_downloadable_model(client, redis_client, worker, stand_in, path, body, tripo_type):
    task_id = run_to_completion(client, redis_client, stand_in, path, body)

    provider_id = store_for(redis_client).get(task_id).provider_task_id
    assert stand_in.control.tasks[provider_id].type == tripo_type


def test_a_cheap_draft_then_refine_gives_a_textured_model(client, redis_client, worker, stand_in):
    draft_id = run_to_completion(client, redis_client, stand_in, "/generate/text-to-model",
                                 {"prompt": "a chess knight", "texture": False})

    refine_id = run_to_completion(client, redis_client, stand_in, "/generate/refine-model",
                                  {"draft_model_task_id": draft_id})

    refined = download(client, f"/tasks/{refine_id}/result").content
    assert gltf_json(refined).get("images")
    draft_provider_id = store_for(redis_client).get(draft_id).provider_task_id
    assert stand_in.control.creates()[-1].json["input"] == draft_provider_id
    assert status_of(client, draft_id)["status"] == "completed"


def convert_to_completion(client, redis_client, stand_in, model_id: str, format: str) -> dict:
    response = client.post("/generate/convert-model", json={"model_task_id": model_id, "format": format})
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["task_id"]
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()
    return wait_for_status(client, task_id, "completed")


def first_zip_entry(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.infolist()[0].filename


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


# What each converted file must be, checked on its bytes.
CONVERTED_FILE_CHECKS = {
    "usdz": lambda data: first_zip_entry(data).endswith((".usda", ".usdc", ".usd")),
    "stl": lambda data: len(data) == 84 + 50 * struct.unpack_from("<I", data, 80)[0],
    "3mf": lambda data: "3D/3dmodel.model" in zip_names(data),
    "obj": lambda data: b"\nv " in data and b"\nf " in data,
    "fbx": lambda data: data.startswith(b"Kaydara FBX Binary  \x00"),
    "gltf": lambda data: json.loads(data)["asset"]["version"] == "2.0",
}


@pytest.mark.parametrize("format", list(CONVERTED_FILE_CHECKS))
def test_a_model_converts_to_a_file_of_the_right_extension_and_content_type(client, redis_client, worker,
                                                                            stand_in, format):
    model_id = run_to_completion(client, redis_client, stand_in, "/generate/text-to-model", {"prompt": "a rook"})

    converted = convert_to_completion(client, redis_client, stand_in, model_id, format)

    assert converted["result_format"] == format
    location = client.get(converted["result_url"]).headers["Location"]
    assert urlparse(location).path.endswith(f"/model.{format}")
    file = requests.get(location, timeout=5)
    assert file.status_code == 200 and file.headers["Content-Type"] == CONTENT_TYPES[format]
    assert CONVERTED_FILE_CHECKS[format](file.content)
    assert stand_in.control.creates()[-1].path == "/v3/models/convert"


def test_a_refined_model_converts_once_and_its_usdz_is_found_again(client, redis_client, worker, stand_in):
    draft_id = run_to_completion(client, redis_client, stand_in, "/generate/text-to-model",
                                 {"prompt": "a chess knight", "texture": False})
    refine_id = run_to_completion(client, redis_client, stand_in, "/generate/refine-model",
                                  {"draft_model_task_id": draft_id})

    usdz = convert_to_completion(client, redis_client, stand_in, refine_id, "usdz")
    again = client.post("/generate/convert-model", json={"model_task_id": refine_id, "format": "usdz"})

    assert stand_in.control.creates()[-1].json == {
        "input": store_for(redis_client).get(refine_id).provider_task_id, "format": "USDZ",
        "face_limit": 100000, "texture_size": 2048}
    assert again.status_code == 200 and again.get_json()["task_id"] == usdz["task_id"]
    assert again.get_json()["status"] == "completed"
    assert [(c["format"], c["task_id"], c["status"]) for c in status_of(client, refine_id)["conversions"]] == [
        ("usdz", usdz["task_id"], "completed")]
    assert len(stand_in.control.creates()) == 3  # draft, refine, one conversion
