"""Results in object storage, end to end: the BFF's app and worker code on Redis, the Tripo
and OpenAI stand-ins (whose signed links really expire), and a real S3 API over HTTP on
loopback (moto's server, tests/local_s3.py), which a test can stop and start again."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import threading

import pytest
import requests
from PIL import Image

from bff.settings import Settings
from bff.tasks.record import MODEL, PREVIEW, STORING, UPLOAD
from bff.tasks.store import task_key
from bff.web import create_app
from sandbox import assets
from sandbox.openai import create_openai_app
from sandbox.server import serve_in_thread
from tests.conftest import OPENAI_KEY, wait_until
from tests.helpers import store_for
from tests.helpers import submit as submit_in_this_thread
from tests.images import encoded
from tests.workers.tripo_standin import status_of, submit, wait_for_submission
from workers import runtime

# Long enough for a few storage retries after an outage; the tests end as soon as they can.
SLOW = 30.0


@pytest.fixture
def settings(redis_client, local_s3, bucket):
    return dataclasses.replace(
        Settings.from_env(), bff_storage_url=f"s3://{bucket}/bff", bff_s3_endpoint_url=local_s3.endpoint_url,
        aws_region="auto", bff_openai_requests_per_minute=1000, bff_openai_tasks_per_minute=1000,
    )


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr("workers.backoff.BASE_SECONDS", 0.05)


@pytest.fixture
def openai(settings, worker_runtime):
    """The OpenAI stand-in, with the worker runtime pointed at it."""
    app = create_openai_app(api_key=OPENAI_KEY)
    server = serve_in_thread(app)
    change_worker_settings(openai_api_base_url=f"{server.base_url}/v1")
    yield app.extensions["openai_sandbox"]
    server.shutdown()


def change_worker_settings(**changes) -> None:
    """Rebuild the workers' runtime (the running worker's next message uses it)."""
    runtime.install(runtime.WorkerRuntime.build(dataclasses.replace(runtime.current().settings, **changes)))


@contextlib.contextmanager
def storage_down(local_s3):
    """The storage refuses connections for the block's duration, then comes back with its data."""
    local_s3.stop()
    try:
        yield
    finally:
        local_s3.start()


def finished_at_tripo(client, redis_client, stand_in) -> str:
    """A new model task, submitted to Tripo and finished there."""
    task_id = submit(client)
    wait_for_submission(redis_client, task_id)
    stand_in.finish_all()
    return task_id


def from_bucket(client, local_s3, path: str) -> requests.Response:
    """Follow a result link as an app does: a 302 straight into the bucket, then a plain GET."""
    redirect = client.get(path)
    assert redirect.status_code == 302, redirect.get_json()
    assert redirect.headers["Location"].startswith(f"{local_s3.endpoint_url}/")
    return requests.get(redirect.headers["Location"], timeout=5)


def keys_in(local_s3, bucket: str, folder: str) -> list[str]:
    return [key for key in local_s3.keys(bucket) if key.startswith(f"bff/{folder}/")]


def post_sketch(client, image: bytes | None = None, n: int = 2) -> str:
    form = {"image": (io.BytesIO(image or encoded("PNG", (300, 200))), "sketch.png"), "prompt": "a robot toy",
            "n": str(n)}
    response = client.post("/generate/image-to-image", data=form, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    return response.get_json()["task_id"]


def openai_status(client, task_id: str) -> dict:
    return client.get(f"/tasks/{task_id}/status?service=openai").get_json()


def wait_for(client, task_id: str, status: str, service: str = "tripo") -> dict:
    def reached():
        body = client.get(f"/tasks/{task_id}/status?service={service}").get_json()
        return body["status"] == status and body
    return wait_until(reached, timeout=SLOW)


def run_model_task(client, redis_client, stand_in) -> str:
    task_id = finished_at_tripo(client, redis_client, stand_in)
    wait_for(client, task_id, "completed")
    return task_id


# --- every result kind is stored, and downloads from the bucket -------------------------------


def test_a_model_and_its_preview_download_from_the_bucket_after_tripo_forgot_them(
        client, redis_client, worker, stand_in, local_s3, bucket):
    task_id = run_model_task(client, redis_client, stand_in)
    stand_in.clock.now += 301  # Tripo's signed links have expired...
    stand_in.control.reset()  # ...and Tripo no longer knows the task
    redis_client.delete(task_key(task_id, "urls"))  # nor does the BFF keep any provider link

    model = from_bucket(client, local_s3, f"/tasks/{task_id}/result")
    preview = from_bucket(client, local_s3, f"/tasks/{task_id}/preview")

    assert model.status_code == 200 and model.content == assets.textured_glb()
    assert model.headers["Content-Type"] == "model/gltf-binary"
    assert preview.content == assets.preview_png() and preview.headers["Content-Type"] == "image/png"
    keys = store_for(redis_client).get(task_id).object_keys
    assert sorted(local_s3.keys(bucket)) == sorted([keys[MODEL], keys[PREVIEW]])
    # bff/results/{task id}/{192 random bits}/{name}: nobody can derive a key from a task id.
    assert all(len(key.split("/")[3]) == 32 for key in (keys[MODEL], keys[PREVIEW]))


def test_concept_images_and_the_upload_live_in_the_bucket_never_in_redis(client, redis_client, openai, local_s3,
                                                                        bucket):
    sketch = encoded("PNG", (300, 200))
    task_id = post_sketch(client, sketch, n=3)
    record = store_for(redis_client).get(task_id)
    assert keys_in(local_s3, bucket, "uploads") == [record.object_keys[UPLOAD]]
    assert not redis_client.exists(task_key(task_id, "upload"))

    submit_in_this_thread(task_id)  # the worker's step, in this thread

    status = openai_status(client, task_id)
    assert status["status"] == "completed" and len(status["result_urls"]) == 3
    images = [from_bucket(client, local_s3, f"/tasks/{task_id}/images/{index}") for index in range(3)]
    assert all(image.headers["Content-Type"] == "image/png" for image in images)
    assert len({Image.open(io.BytesIO(image.content)).tobytes() for image in images}) == 3
    assert openai.requests[0].files[0].size == len(sketch)  # the input went to OpenAI from the bucket
    assert keys_in(local_s3, bucket, "uploads") == []  # deleted once the task ended
    assert len(keys_in(local_s3, bucket, "results")) == 3
    assert not redis_client.exists(task_key(task_id, "images"))
    inline = client.get(f"/tasks/{task_id}/status?service=openai&include=b64_json").get_json()["b64_json"]
    assert len(inline) == 3


def test_the_status_can_carry_the_signed_links_themselves(client, redis_client, worker, stand_in, local_s3):
    task_id = run_model_task(client, redis_client, stand_in)

    body = client.get(f"/tasks/{task_id}/status?service=tripo&include=signed_urls").get_json()

    [model_link] = body["signed_result_urls"]
    assert requests.get(model_link, timeout=5).content == assets.textured_glb()
    assert requests.get(body["signed_preview_url"], timeout=5).content == assets.preview_png()
    assert body["result_url"].endswith(f"/tasks/{task_id}/result")  # the BFF's own links stay as they were
    assert "signed_result_urls" not in status_of(client, task_id)


def test_a_preview_not_in_the_bucket_has_no_signed_link(client, redis_client):
    from tests.helpers import TEST_CLIENT, completed_model

    model = completed_model(redis_client, client=TEST_CLIENT, outputs={"model": "glb", "preview": "png"},
                            object_keys={MODEL: "bff/results/t/model.glb"})

    answer = client.get(f"/tasks/{model.id}/status?service=tripo&include=signed_urls")

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["signed_preview_url"] is None and len(answer.get_json()["signed_result_urls"]) == 1


def test_a_signed_link_expires_and_the_result_link_signs_a_fresh_one(app, redis_client, worker, stand_in, local_s3,
                                                                    settings):
    task_id = run_model_task(app.test_client(), redis_client, stand_in)
    client = create_app(dataclasses.replace(settings, bff_storage_link_seconds=2)).test_client()
    first = client.get(f"/tasks/{task_id}/result").headers["Location"]
    assert "X-Amz-Expires=2&" in first and requests.get(first, timeout=5).status_code == 200

    wait_until(lambda: requests.get(first, timeout=5).status_code == 403, timeout=10, interval=0.2)

    assert from_bucket(client, local_s3, f"/tasks/{task_id}/result").content == assets.textured_glb()


# --- the storage is down ------------------------------------------------------------------------


def test_a_finished_model_waits_at_99_while_the_storage_is_down_then_completes(
        client, redis_client, worker, stand_in, local_s3, fast_retries):
    with storage_down(local_s3):
        task_id = finished_at_tripo(client, redis_client, stand_in)
        wait_until(lambda: store_for(redis_client).get(task_id).store_tries >= 2, timeout=SLOW)
        status = status_of(client, task_id)
        assert (status["status"], status["progress"], status["result_url"]) == ("processing", 99, None)
        assert client.get(f"/tasks/{task_id}/result").status_code == 409
        assert client.get("/readyz").get_json()["storage"] == "unreachable"
        stand_in.clock.now += 301  # the links Tripo gave when the task finished have expired meanwhile

    wait_for(client, task_id, "completed")

    assert client.get("/readyz").get_json()["storage"] == "ok"
    assert from_bucket(client, local_s3, f"/tasks/{task_id}/result").content == assets.textured_glb()


def test_paid_images_wait_in_redis_while_the_storage_is_down_then_move_to_it(
        client, redis_client, worker, openai, local_s3, bucket, fast_retries):
    openai.delay_next(seconds=1.0)  # the edit is made, then answers late: the storage goes down meanwhile
    task_id = post_sketch(client, n=2)
    wait_until(lambda: openai.requests)
    with storage_down(local_s3):
        waiting = wait_until(lambda: (task := store_for(redis_client).get(task_id)).submission == STORING and task)
        assert len(store_for(redis_client).images(task_id)) == 2  # kept, not thrown away
        assert (openai_status(client, task_id)["status"], waiting.progress) == ("processing", 99)

    wait_for(client, task_id, "completed", service="openai")

    assert not redis_client.exists(task_key(task_id, "images"))
    assert len(keys_in(local_s3, bucket, "results")) == 2 and keys_in(local_s3, bucket, "uploads") == []
    assert from_bucket(client, local_s3, f"/tasks/{task_id}/images/1").content.startswith(b"\x89PNG")
    assert len(openai.processed) == 1


def test_a_storage_down_past_the_deadline_fails_the_model_task_with_a_storage_code(
        client, redis_client, worker, stand_in, local_s3, fast_retries):
    with storage_down(local_s3):
        task_id = finished_at_tripo(client, redis_client, stand_in)
        wait_until(lambda: store_for(redis_client).get(task_id).submission == STORING)
        change_worker_settings(bff_task_deadline_seconds=0.5)

        failed = wait_for(client, task_id, "failed")

    assert failed["error"]["code"] == "result_storage_failed"


def test_paid_images_not_stored_by_the_deadline_fail_naming_the_openai_request(
        client, redis_client, worker, openai, local_s3, fast_retries):
    openai.delay_next(seconds=1.0)
    task_id = post_sketch(client)
    wait_until(lambda: openai.requests)
    with storage_down(local_s3):
        wait_until(lambda: store_for(redis_client).get(task_id).submission == STORING)
        change_worker_settings(bff_task_deadline_seconds=0.5)

        failed = wait_for(client, task_id, "failed", service="openai")

    assert failed["error"]["code"] == "result_not_kept"
    assert store_for(redis_client).get(task_id).provider_request_id in failed["error"]["message"]


def test_an_input_the_storage_cannot_give_back_is_not_sent_until_it_can(client, redis_client, openai, local_s3):
    task_id = post_sketch(client)
    with storage_down(local_s3):
        retry_in = submit_in_this_thread(task_id)

    assert retry_in is not None and openai.requests == []  # nothing sent without its input: nothing paid
    submit_in_this_thread(task_id)
    assert openai_status(client, task_id)["status"] == "completed"


def test_a_refused_link_is_read_again_then_fails_the_model_but_never_for_a_preview(
        client, redis_client, worker, stand_in, local_s3, bucket):
    # As when a link expires while an earlier file is copied: read afresh, it works.
    stand_in.control.fail_next("/preview.png", status=403, code=1004, message="Request has expired")
    recovered = run_model_task(client, redis_client, stand_in)
    assert from_bucket(client, local_s3, f"/tasks/{recovered}/preview").content == assets.preview_png()
    # A link refused even when freshly read: the provider will not hand the file over.
    stand_in.control.fail_next("/model.glb", status=403, code=1004, message="Access denied", times=2)
    task_id = finished_at_tripo(client, redis_client, stand_in)

    assert wait_for(client, task_id, "failed")["error"]["code"] == "result_unavailable"
    assert len(local_s3.keys(bucket)) == 2  # only the first task's files
    # A preview that cannot be had does not cost the user a paid model.
    stand_in.control.fail_next("/preview.png", status=403, code=1004, message="Access denied", times=2)
    without_preview = run_model_task(client, redis_client, stand_in)
    status = client.get(f"/tasks/{without_preview}/status?service=tripo&include=signed_urls").get_json()
    assert status["preview_url"] is None and status["signed_preview_url"] is None
    assert requests.get(status["signed_result_urls"][0], timeout=5).content == assets.textured_glb()


def test_a_model_over_the_size_cap_fails_cleanly(client, redis_client, worker, stand_in, local_s3, bucket):
    change_worker_settings(bff_max_model_mb=len(assets.textured_glb()) / 2 / 1024 / 1024)
    task_id = finished_at_tripo(client, redis_client, stand_in)

    failed = wait_for(client, task_id, "failed")

    assert failed["error"]["code"] == "result_too_large"
    assert local_s3.keys(bucket) == [] and local_s3.uploads_in_progress(bucket) == []


def test_the_service_takes_and_follows_tasks_while_the_storage_is_down(client, redis_client, local_s3, bucket):
    with storage_down(local_s3):
        accepted = client.post("/generate/text-to-model", json={"prompt": "a chess knight"})
        refused = client.post("/generate/image-to-image", data={
            "image": (io.BytesIO(encoded("PNG")), "sketch.png"), "prompt": "a robot toy"},
            content_type="multipart/form-data")
        status = status_of(client, accepted.get_json()["task_id"])
        ready = client.get("/readyz")

    assert accepted.status_code == 202 and status["status"] == "pending"
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert store_for(redis_client).open_task_ids() == [accepted.get_json()["task_id"]]  # nothing recorded for it
    assert keys_in(local_s3, bucket, "uploads") == []
    assert ready.status_code == 200 and ready.get_json()["storage"] == "unreachable"


# --- Redis memory ---------------------------------------------------------------------------------


def noisy_sketch() -> bytes:
    """A 1024 px sketch whose edits come back as PNGs of about 1.5 MB, the size of real ones."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def redis_growth(client, redis_client, tasks: int) -> int:
    """Bytes of Redis memory that ``tasks`` completed image tasks of 2 images each hold."""
    sketch = noisy_sketch()
    before = redis_client.info("memory")["used_memory"]
    for _ in range(tasks):
        task_id = post_sketch(client, sketch, n=2)
        submit_in_this_thread(task_id)
        assert openai_status(client, task_id)["status"] == "completed"
    return redis_client.info("memory")["used_memory"] - before


def test_redis_memory_stays_flat_as_image_tasks_grow_with_storage(client, redis_client, openai, settings, capsys):
    tasks = 5
    with_storage = redis_growth(client, redis_client, tasks)
    change_worker_settings(bff_storage_url=None)
    without_storage = redis_growth(create_app(dataclasses.replace(settings, bff_storage_url=None)).test_client(),
                                   redis_client, tasks)

    with capsys.disabled():
        print(f"\nRedis growth for {tasks} image tasks of 2 images: {with_storage / 1024:.0f} KiB with storage, "
              f"{without_storage / 1024 / 1024:.1f} MiB without")
    assert with_storage < tasks * 16 * 1024  # task records and indexes only
    assert without_storage > tasks * 2 * 1024 * 1024  # two images of about 1.5 MB each


def test_an_upload_whose_request_records_no_task_is_not_left_in_the_bucket(settings, redis_client, local_s3, bucket):
    """The upload goes to the bucket before the task is recorded; a request that then
    records nothing (a replay, a refusal) deletes its copy."""
    client = create_app(dataclasses.replace(settings, bff_user_daily_credits=10)).test_client()

    def post(prompt, headers=None):
        form = {"image": (io.BytesIO(encoded("PNG", (300, 200))), "sketch.png"), "prompt": prompt, "n": "1"}
        return client.post("/generate/image-to-image", data=form, content_type="multipart/form-data",
                           headers=headers or {})

    key = {"Idempotency-Key": "one-user-action"}
    first, replayed = post("a robot toy", key), post("a robot toy", key)
    refused = [post(f"another robot {n}") for n in range(10)]  # until the day's credits run out

    assert first.status_code == replayed.status_code == 202 and replayed.headers["Idempotent-Replayed"] == "true"
    accepted = [first] + [answer for answer in refused if answer.status_code == 202]
    assert refused[-1].status_code == 429 and refused[-1].get_json()["reason"] == "credits_exhausted"
    kept = {store_for(redis_client).get(answer.get_json()["task_id"]).object_keys[UPLOAD] for answer in accepted}
    assert set(keys_in(local_s3, bucket, "uploads")) == kept  # no copy of the replay's or the refusals' upload


def test_a_storing_lease_is_respected_while_its_worker_lives_and_taken_over_once_it_is_gone(
        client, redis_client, openai, local_s3, bucket, fast_retries):
    from workers import storing
    from workers.heartbeat import heartbeat_key

    openai.delay_next(seconds=1.0)  # the edit is made, then answers late: the storage goes down meanwhile
    task_id = post_sketch(client, n=1)
    sender = threading.Thread(target=submit_in_this_thread, args=(task_id,))
    sender.start()
    wait_until(lambda: openai.requests)
    with storage_down(local_s3):
        sender.join(timeout=SLOW)
    assert store_for(redis_client).get(task_id).submission == STORING  # its images wait in Redis
    tries = store_for(redis_client).get(task_id).store_tries
    lease = task_key(task_id, "storing")
    # A lease with no worker named (a process not beating, or the version before) only expires.
    redis_client.set(lease, "/attempt-0", ex=600)
    storing.store_results(runtime.current(), task_id)
    assert redis_client.get(lease) == b"/attempt-0"
    # Another worker is storing them: its lease, and its heartbeat.
    redis_client.set(heartbeat_key("other-worker"), "1", ex=15)
    redis_client.set(lease, "other-worker/attempt-1", ex=600)

    storing.store_results(runtime.current(), task_id)

    # Left to it: no attempt made here.
    assert redis_client.get(lease) == b"other-worker/attempt-1"
    assert keys_in(local_s3, bucket, "results") == []
    assert store_for(redis_client).get(task_id).store_tries == tries

    redis_client.delete(heartbeat_key("other-worker"))  # it died mid-attempt
    storing.store_results(runtime.current(), task_id)

    assert openai_status(client, task_id)["status"] == "completed"
    assert len(keys_in(local_s3, bucket, "results")) == 1
    assert not redis_client.exists(lease)  # released after the attempt


def test_a_lease_take_sent_again_after_its_reply_was_lost_finds_the_lease_its_own(redis_client):
    from workers import storing
    from workers.heartbeat import heartbeat_key

    def take(token):
        return redis_client.eval(storing._TAKE_LEASE, 1, "bff:task:t1:storing", token, 600, heartbeat_key(""))

    assert take("worker-a/1") == 1
    assert take("worker-a/1") == 1  # the same call again: redis-py re-sends it when its reply is lost
    assert take("worker-b/2") == 2  # worker-a has no heartbeat: taken over
    redis_client.set(heartbeat_key("worker-b"), "1", ex=15)
    assert take("worker-c/3") == 0  # worker-b lives
