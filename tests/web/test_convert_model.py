"""POST /generate/convert-model at the HTTP boundary: the exact convert call Tripo gets for
each format, with the defaults and with explicit options; each refusal; the reuse of a
conversion the model already has; and the file a finished conversion leads to."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from bff.tasks.error_codes import task_error
from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.record import Kind
from bff.web import create_app
from tests.helpers import TEST_CLIENT, completed_model, poll_cycle, queued, store_for, submit

CONVERT = "/generate/convert-model"
MODEL_PROVIDER_ID = "tripo-draft-1"
KEY = {"Idempotency-Key": "5d0c7a3e-1b7e-4c55-9a0f-6f1d2c3b4a59"}


def convert(client, model_id: str, format: str = "usdz", headers: dict | None = None, **options):
    return client.post(CONVERT, json={"model_task_id": model_id, "format": format, **options}, headers=headers)


def accepted_id(response) -> str:
    assert response.status_code == 202, response.get_json()
    return response.get_json()["task_id"]


def sent_to_tripo(client, tripo, model_id: str, format: str, **options) -> dict:
    """Accept a conversion, run its submission, and return the one convert call Tripo saw."""
    submit(accepted_id(convert(client, model_id, format, **options)))
    [sent] = tripo.create_bodies("/models/convert")
    return sent


@pytest.mark.parametrize("format, sent", [
    ("usdz", {"format": "USDZ", "face_limit": 100000, "texture_size": 2048}),  # sized for AR Quick Look
    ("stl", {"format": "STL"}),  # full geometry, no texture
    ("3mf", {"format": "3MF"}),
    ("obj", {"format": "OBJ"}),  # Tripo's defaults
    ("fbx", {"format": "FBX"}),
    ("gltf", {"format": "GLTF"}),
])
def test_each_format_with_its_defaults(client, redis_client, worker_runtime, tripo, format, sent):
    model = completed_model(redis_client)

    assert sent_to_tripo(client, tripo, model.id, format) == {"input": MODEL_PROVIDER_ID, **sent}


@pytest.mark.parametrize("format, options, sent", [
    ("usdz", {"face_limit": 250000, "texture_size": 1024}, {"face_limit": 250000, "texture_size": 1024}),
    ("usdz", {"texture_size": 4096}, {"face_limit": 100000}),  # Tripo's own default is not sent
    ("stl", {"face_limit": 50000}, {"face_limit": 50000}),
    ("3mf", {"face_limit": 500000}, {"face_limit": 500000}),
    ("obj", {"face_limit": 1000, "texture_size": 4096}, {"face_limit": 1000}),
    ("fbx", {"texture_size": 256}, {"texture_size": 256}),
    ("gltf", {"face_limit": 20000, "texture_size": 512}, {"face_limit": 20000, "texture_size": 512}),
])
def test_each_format_with_explicit_options(client, redis_client, worker_runtime, tripo, format, options, sent):
    model = completed_model(redis_client)

    assert sent_to_tripo(client, tripo, model.id, format, **options) == {
        "input": MODEL_PROVIDER_ID, "format": format.upper(), **sent}


@pytest.mark.parametrize("format, options, recorded", [
    ("usdz", {}, {"face_limit": 100000, "texture_size": 2048}),
    ("stl", {}, {"face_limit": None, "texture_size": None}),
    ("gltf", {"face_limit": 30000}, {"face_limit": 30000, "texture_size": 4096}),
])
def test_the_conversion_records_its_model_format_and_effective_options(client, redis_client, format, options,
                                                                       recorded):
    model = completed_model(redis_client)

    task = store_for(redis_client).get(accepted_id(convert(client, model.id, format, **options)))

    assert (task.kind, task.status, task.client) == ("convert_model", "pending", TEST_CLIENT)
    assert task.params == {"model_task_id": model.id, "source_provider_task_id": MODEL_PROVIDER_ID,
                           "format": format, **recorded}


def test_a_refined_model_converts(client, redis_client, worker_runtime, tripo):
    refined = completed_model(redis_client, kind=Kind.REFINE_MODEL, provider_task_id="tripo-refined-7",
                              params={"draft_model_task_id": "d", "draft_provider_task_id": "t"})

    assert sent_to_tripo(client, tripo, refined.id, "stl") == {"input": "tripo-refined-7", "format": "STL"}


def test_an_unknown_model_or_another_clients_is_404(client, redis_client):
    someone_elses = completed_model(redis_client, client="address:203.0.113.7")

    for model_id in ("no-such-task", someone_elses.id):
        response = convert(client, model_id)
        assert response.status_code == 404 and model_id in response.get_json()["message"]
    assert queued(redis_client, SUBMIT_QUEUE) == 0


@pytest.mark.parametrize("changes, message", [
    ({"status": "processing"}, "The model is processing; only a completed model can be converted."),
    ({"status": "failed", "error": task_error("timeout")}, "The model is failed"),
    ({"service": "openai", "kind": "image_to_image"}, "Only a 3D model task can be converted"),
    ({"kind": "convert_model"}, "This task is a conversion; only the model it was made from can be converted."),
])
def test_a_task_that_is_not_a_completed_model_is_409(client, redis_client, changes, message):
    not_convertible = completed_model(redis_client, **changes)

    response = convert(client, not_convertible.id)

    assert response.status_code == 409 and message in response.get_json()["message"]
    assert queued(redis_client, SUBMIT_QUEUE) == 0


def test_a_conversion_cannot_be_refined_either(client, redis_client):
    conversion = completed_model(redis_client, kind=Kind.CONVERT_MODEL)

    response = client.post("/generate/refine-model", json={"draft_model_task_id": conversion.id})

    assert response.status_code == 409 and "This task is a conversion" in response.get_json()["message"]


@pytest.mark.parametrize("body, field, message", [
    ({"format": "ply"}, "format", "Must be one of: usdz, stl, 3mf, obj, fbx, gltf."),
    ({"format": "USDZ"}, "format", "Must be one of: usdz, stl, 3mf, obj, fbx, gltf."),
    ({"face_limit": 999}, "face_limit", "greater than or equal to 1000 and less than or equal to 500000"),
    ({"face_limit": 500001}, "face_limit", "greater than or equal to 1000 and less than or equal to 500000"),
    ({"face_limit": "5000"}, "face_limit", "Not a valid integer."),
    ({"texture_size": 255}, "texture_size", "greater than or equal to 256 and less than or equal to 4096"),
    ({"texture_size": 4097}, "texture_size", "greater than or equal to 256 and less than or equal to 4096"),
    ({"format": "stl", "texture_size": 1024}, "texture_size",
     "stl carries no texture; texture_size is only for usdz, obj, fbx, gltf."),
    ({"format": "3mf", "texture_size": 1024}, "texture_size", "3mf carries no texture"),
    ({"quad": True}, "quad", "Unknown field."),
])
def test_a_bad_format_or_range_is_422_naming_the_allowed_values(client, redis_client, body, field, message):
    model = completed_model(redis_client)

    response = client.post(CONVERT, json={"model_task_id": model.id, "format": "usdz", **body})

    assert response.status_code == 422
    assert message in " ".join(response.get_json()["errors"]["json"][field])
    assert queued(redis_client, SUBMIT_QUEUE) == 0


def test_asking_again_for_a_conversion_the_model_has_answers_200_with_it(client, redis_client):
    model = completed_model(redis_client)
    first = convert(client, model.id, "usdz")

    again = convert(client, model.id, "usdz")
    spelled_out = convert(client, model.id, "usdz", face_limit=100000, texture_size=2048)

    assert again.status_code == spelled_out.status_code == 200
    assert again.get_json() == spelled_out.get_json() == first.get_json()  # the same body as the 202
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in again.headers
    assert len(store_for(redis_client).open_task_ids()) == 2 and queued(redis_client, SUBMIT_QUEUE) == 1


def test_another_format_or_other_options_make_a_new_conversion(client, redis_client):
    model = completed_model(redis_client)
    usdz = accepted_id(convert(client, model.id, "usdz"))

    others = [accepted_id(convert(client, model.id, *args, **options)) for args, options in [
        (("stl",), {}), (("usdz",), {"face_limit": 50000}), (("usdz",), {"texture_size": 1024})]]

    assert len({usdz, *others}) == 4


def test_a_failed_conversion_is_not_reused(client, redis_client):
    model = completed_model(redis_client)
    failed = accepted_id(convert(client, model.id, "stl"))
    store_for(redis_client).update(failed, lambda task: task.failed(task_error("provider_failed")))

    again = accepted_id(convert(client, model.id, "stl"))

    assert again != failed
    listed = client.get(f"/tasks/{model.id}/status?service=tripo").get_json()["conversions"]
    assert [(c["task_id"], c["status"]) for c in listed] == [(again, "pending")]


def test_the_model_lists_its_conversions(client, redis_client):
    model = completed_model(redis_client)
    usdz = accepted_id(convert(client, model.id, "usdz"))
    stl = accepted_id(convert(client, model.id, "stl", face_limit=200000))
    store_for(redis_client).update(usdz, lambda task: task.evolve(status="completed", progress=100,
                                                                  outputs={"model": "usdz"}))

    body = client.get(f"/tasks/{model.id}/status?service=tripo").get_json()

    assert body["conversions"] == [
        {"task_id": usdz, "format": "usdz", "face_limit": 100000, "texture_size": 2048, "status": "completed",
         "status_url": f"http://localhost/tasks/{usdz}/status?service=tripo"},
        {"task_id": stl, "format": "stl", "face_limit": 200000, "texture_size": None, "status": "pending",
         "status_url": f"http://localhost/tasks/{stl}/status?service=tripo"},
    ]
    assert body["result_format"] == "glb"
    conversion = client.get(f"/tasks/{usdz}/status?service=tripo").get_json()
    assert conversion["result_format"] == "usdz" and "conversions" not in conversion  # not convertible itself
    assert convert(client, model.id, "usdz").get_json()["status"] == "completed"


def test_two_taps_at_once_make_one_conversion(settings, redis_client):
    app = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=100))
    model = completed_model(redis_client)
    start = threading.Barrier(12)
    answers = []

    def tap():
        client = app.test_client()
        start.wait()
        answers.append(convert(client, model.id, "usdz"))

    threads = [threading.Thread(target=tap) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answer.status_code for answer in answers) == [200] * 11 + [202]
    assert len({answer.get_json()["task_id"] for answer in answers}) == 1
    assert queued(redis_client, SUBMIT_QUEUE) == 1


def test_a_retry_with_the_same_idempotency_key_is_still_a_replayed_202(client, redis_client):
    model = completed_model(redis_client)
    first = convert(client, model.id, "usdz", headers=KEY)

    again = convert(client, model.id, "usdz", headers=KEY)

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert queued(redis_client, SUBMIT_QUEUE) == 1


def test_a_reuse_leaves_its_idempotency_key_free(client, redis_client):
    model = completed_model(redis_client)
    first = convert(client, model.id, "stl")
    other_key = {"Idempotency-Key": "a-new-user-action"}

    reused = convert(client, model.id, "stl", headers=other_key)
    retried = convert(client, model.id, "stl", headers=other_key)

    assert reused.status_code == retried.status_code == 200  # found again, not a replay of a remembered answer
    assert reused.get_json()["task_id"] == retried.get_json()["task_id"] == first.get_json()["task_id"]
    assert "Idempotent-Replayed" not in retried.headers


def test_conversions_count_against_the_other_generation_routes_limit(settings, redis_client):
    client = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=2)).test_client()
    model = completed_model(redis_client)

    answers = [client.post("/generate/text-to-model", json={"prompt": "a cup"}), convert(client, model.id),
               convert(client, model.id, "stl")]

    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[2].get_json()["message"].startswith("Rate limit")  # not credits


def test_a_conversion_of_a_missing_model_counts_against_the_limit_too(settings, redis_client):
    """Convert reads the model before recording, so it counts each request first: probing
    for models past the limit is refused."""
    client = create_app(dataclasses.replace(settings, bff_tripo_other_requests_per_minute=1)).test_client()
    model = completed_model(redis_client)

    assert convert(client, "no-such-model").status_code == 404
    limited = convert(client, model.id)

    assert limited.status_code == 429 and limited.get_json()["message"].startswith("Rate limit")


@pytest.mark.parametrize("model_file, result_format", [
    ("model.usdz", "usdz"), ("model.stl", "stl"), ("model.3mf", "3mf"), ("model.obj", "obj"), ("model.fbx", "fbx"),
    ("model.gltf", "gltf"), ("model.glb", "glb"),  # Tripo may give glTF as binary
    ("model.zip", "zip"),  # an OBJ or glTF with its side files, packed
    ("Model.USDZ", "usdz"), ("model", "glb"),  # no known extension: what Tripo usually makes
])
def test_a_finished_conversion_leads_to_its_file(client, redis_client, worker_runtime, tripo, model_file,
                                                 result_format):
    model = completed_model(redis_client)
    task_id = accepted_id(convert(client, model.id, "obj"))
    submit(task_id)
    tripo.succeed(store_for(redis_client).get(task_id).provider_task_id, model_file=model_file)

    poll_cycle()

    body = client.get(f"/tasks/{task_id}/status?service=tripo").get_json()
    assert (body["status"], body["result_format"]) == ("completed", result_format)
    location = client.get(body["result_url"]).headers["Location"]
    assert location.split("?")[0].endswith(f"/{model_file}")
