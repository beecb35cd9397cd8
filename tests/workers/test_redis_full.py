"""A full Redis (maxmemory, noeviction): paid results are kept, not thrown away, readiness
says so, and no log line carries the image bytes redis-py quotes in its errors."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import sys
import threading

import pytest

from bff.logs import MAX_VALUE_CHARS, JsonFormatter
from bff.tasks.record import Kind, Service, Task, Upload
from tests.helpers import store_for, submit
from tests.images import encoded, noise_png
from workers import runtime

EDITS_URL = "https://api.openai.com/v1/images/edits"


@pytest.fixture
def redis_memory(redis_client):
    """Sets the private server's maxmemory; always lifted again afterwards."""

    def limit(max_bytes: int) -> None:
        redis_client.config_set("maxmemory", max_bytes)

    yield limit
    redis_client.config_set("maxmemory", 0)


def image_task(redis_client) -> Task:
    task = Task.new(service=Service.OPENAI, kind=Kind.IMAGE_TO_IMAGE, request_id="req-test", client="c",
                    params={"prompt": "a robot", "style": None, "n": 2, "size": "1024x1024"})
    store_for(redis_client).create(task, Upload(encoded("PNG"), "image/png", "image.png"))
    return task


def big_images(count: int) -> list[dict]:
    # Noise does not compress: each PNG is about 0.75 MB.
    return [{"b64_json": base64.b64encode(noise_png((512, 512))).decode()} for _ in range(count)]


def test_a_full_redis_is_not_ready(client, redis_client, redis_memory):
    redis_memory(1)
    response = client.get("/readyz")
    assert response.status_code == 503 and "full" in response.get_json()["message"]
    redis_memory(0)
    assert client.get("/readyz").status_code == 200


def test_images_paid_for_while_redis_is_full_are_kept_once_it_has_room(redis_client, worker_runtime, requests_mock,
                                                                       redis_memory, caplog):
    task = image_task(redis_client)
    room_again = threading.Timer(1.5, redis_memory, args=(0,))  # the outage lasts a moment

    def edit_while_redis_fills_up(request, context):
        redis_memory(1)
        room_again.start()
        context.headers["x-request-id"] = "req_full_1"
        return {"created": 1, "data": big_images(2)}

    requests_mock.post(EDITS_URL, json=edit_while_redis_fills_up)

    submit(task.id)

    done = store_for(redis_client).get(task.id)
    assert done.status == "completed" and done.outputs["images"] == 2
    assert len(store_for(redis_client).images(task.id)) == 2 and requests_mock.call_count == 1
    _assert_no_binary_in_logs(caplog)


def test_images_that_cannot_be_kept_by_the_deadline_fail_the_task_naming_the_request(redis_client, worker_runtime,
                                                                                     requests_mock, redis_memory,
                                                                                     caplog):
    short = dataclasses.replace(worker_runtime.settings, bff_task_deadline_seconds=2)
    runtime.install(runtime.WorkerRuntime.build(short))
    task = image_task(redis_client)
    used = redis_client.info("memory")["used_memory"]

    def edit_too_big_to_keep(request, context):
        redis_memory(used + 300_000)  # room for records, not for megabytes of images
        context.headers["x-request-id"] = "req_full_2"
        return {"created": 1, "data": big_images(3)}

    requests_mock.post(EDITS_URL, json=edit_too_big_to_keep)

    submit(task.id)

    failed = store_for(redis_client).get(task.id)
    assert failed.status == "failed" and failed.error.code == "result_not_kept"
    assert "req_full_2" in failed.error.message and failed.provider_request_id == "req_full_2"
    assert requests_mock.call_count == 1
    _assert_no_binary_in_logs(caplog)


def test_a_redis_error_quoting_image_bytes_is_logged_without_them(redis_client, redis_memory):
    redis_memory(1)
    try:
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.rpush("bff:test:images", noise_png((256, 256)))
            pipe.execute()
    except Exception:
        record = logging.LogRecord("bff", logging.ERROR, __file__, 1, "store failed", None, sys.exc_info())
    line = JsonFormatter().format(record)
    assert "PNG" in str(record.exc_info[1])  # redis-py does quote the bytes
    assert "PNG" not in line and "[binary]" in line and len(line) < 2 * MAX_VALUE_CHARS


def _assert_no_binary_in_logs(caplog) -> None:
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any("could not store a paid result" in line for line in lines)
    for line in lines:
        assert "PNG" not in json.dumps(json.loads(line)) and len(line) < 2 * MAX_VALUE_CHARS, line[:200]
