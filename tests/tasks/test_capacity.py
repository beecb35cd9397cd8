"""Provider capacity: Tripo tasks in flight and OpenAI edits per window are bounded;
the rest wait in order, show their place in the queue, and are sent as capacity frees."""

from __future__ import annotations

import dataclasses
import io
import time

import pytest

from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.store import task_key
from tests.conftest import wait_until
from tests.helpers import completed_model, new_text_task, poll_cycle, queued, reconcile_open_tasks, store_for, submit
from tests.images import encoded
from workers import runtime
from workers.reconcile import CLAIM_TIMEOUT_SECONDS


@pytest.fixture
def limits(worker_runtime):
    def install(**changes):
        runtime.install(runtime.WorkerRuntime.build(dataclasses.replace(worker_runtime.settings, **changes)))
    return install


def submit_all(redis_client, count, **task_args):
    tasks = [new_text_task(redis_client, **task_args) for _ in range(count)]
    for task in tasks:
        submit(task.id)
    return [store_for(redis_client).get(task.id) for task in tasks]


def test_tasks_beyond_the_limit_wait_pending_with_their_place(client, redis_client, limits, tripo):
    limits(bff_tripo_concurrency=2)

    tasks = submit_all(redis_client, 4)

    assert len(tripo.create_bodies()) == 2
    assert [t.submission for t in tasks] == ["submitted", "submitted", "waiting", "waiting"]
    third, fourth = (client.get(f"/tasks/{t.id}/status?service=tripo").get_json() for t in tasks[2:])
    assert (third["status"], third["queue_position"], fourth["queue_position"]) == ("pending", 1, 2)
    assert "queue_position" not in client.get(f"/tasks/{tasks[0].id}/status?service=tripo").get_json()


def test_a_finished_task_frees_its_slot_for_the_oldest_waiting_one(redis_client, limits, tripo):
    limits(bff_tripo_concurrency=2)
    first, _, oldest_waiting, newer_waiting = submit_all(redis_client, 4)
    tripo.succeed(first.provider_task_id)

    poll_cycle()  # sees the success, frees the slot, dispatches the oldest waiting task

    assert queued(redis_client, SUBMIT_QUEUE) == 1
    submit(newer_waiting.id)  # a newer task cannot jump the queue
    assert store_for(redis_client).get(newer_waiting.id).submission == "waiting"
    submit(oldest_waiting.id)
    assert store_for(redis_client).get(oldest_waiting.id).submission == "submitted"
    assert len(tripo.create_bodies()) == 3


def test_a_new_task_waits_behind_older_waiting_ones_even_with_a_free_slot(redis_client, limits, tripo):
    limits(bff_tripo_concurrency=1)
    running, waiting = submit_all(redis_client, 2)
    tripo.succeed(running.provider_task_id)
    poll_cycle()

    late = submit_all(redis_client, 1)[0]

    assert late.submission == "waiting" and store_for(redis_client).queue_position(late) == 2


@pytest.mark.parametrize("end", ["succeeded", "failed", "deadline", "died_before_sending", "died_mid_call"])
def test_every_way_a_task_stops_holding_a_slot_frees_it(redis_client, limits, tripo, end):
    limits(bff_tripo_concurrency=1)
    store = store_for(redis_client)
    holder = submit_all(redis_client, 1)[0]
    assert store.free_capacity(_generation_bucket()) == 0  # the slot is held while the task is in flight
    long_ago = time.time() - CLAIM_TIMEOUT_SECONDS["tripo"] - 1
    if end == "succeeded":
        tripo.succeed(holder.provider_task_id)
    elif end == "failed":
        tripo.set_task(holder.provider_task_id, "failed", 10)
    elif end == "deadline":
        store.update(holder.id, lambda t: t.evolve(created_at=time.time() - 10_000))
    else:  # the worker died holding the claim, before or after the call left
        sending_at = long_ago if end == "died_mid_call" else None
        store.update(holder.id, lambda t: t.evolve(submission="claimed", provider_task_id=None,
                                                   claimed_at=long_ago, sending_at=sending_at))

    poll_cycle()

    assert store.free_capacity(_generation_bucket()) == 1


def test_a_provider_429_gives_the_slot_back_while_the_task_waits(redis_client, limits, tripo, requests_mock):
    limits(bff_tripo_concurrency=1)
    refusals = requests_mock.post(f"{tripo.base_url}/generation/text-to-model", status_code=429,
                                  json={"code": 2000, "message": "busy"})

    holder = submit_all(redis_client, 1)[0]

    assert refusals.call_count == 1  # it held the slot while it called
    assert holder.submission == "not_submitted" and holder.status == "pending"
    assert store_for(redis_client).free_capacity(_generation_bucket()) == 1


def _generation_bucket():
    from bff.tasks.capacity import bucket_for

    return bucket_for("tripo", "text_to_model", runtime.current().settings)


def test_refine_has_its_own_bucket(redis_client, limits, tripo):
    limits(bff_tripo_concurrency=1, bff_tripo_refine_concurrency=1)
    draft = submit_all(redis_client, 1)[0]
    tripo.succeed(draft.provider_task_id)
    poll_cycle()
    submit_all(redis_client, 1)  # takes the one generation slot
    from bff.tasks.record import Task

    refine = Task.new(service="tripo", kind="refine_model", request_id="r", client="c",
                      params={"draft_model_task_id": draft.id, "draft_provider_task_id": draft.provider_task_id})
    store_for(redis_client).create(refine)

    submit(refine.id)

    assert store_for(redis_client).get(refine.id).submission == "submitted"


def test_a_conversion_shares_the_refine_bucket_not_the_generation_one(redis_client, limits, tripo):
    # Tripo counts re-texture and convert together, apart from generation.
    from bff.tasks.record import Task

    limits(bff_tripo_concurrency=1, bff_tripo_refine_concurrency=1)
    model = completed_model(redis_client)
    conversion = Task.new(service="tripo", kind="convert_model", request_id="r", client="c",
                          params={"model_task_id": model.id, "source_provider_task_id": model.provider_task_id,
                                  "format": "stl", "face_limit": None, "texture_size": None})
    refine = Task.new(service="tripo", kind="refine_model", request_id="r", client="c",
                      params={"draft_model_task_id": model.id, "draft_provider_task_id": model.provider_task_id})
    for task in (conversion, refine):
        store_for(redis_client).create(task)
        submit(task.id)

    generation = submit_all(redis_client, 1)[0]

    assert [store_for(redis_client).get(t.id).submission for t in (conversion, refine, generation)] == [
        "submitted", "waiting", "submitted"]
    assert len(tripo.create_bodies("/models/convert")) == 1 and not tripo.create_bodies("/models/texture")


def test_waiting_for_capacity_does_not_count_against_the_deadline(redis_client, limits, tripo):
    limits(bff_tripo_concurrency=1)
    running, waiting = submit_all(redis_client, 2)
    deadline = runtime.current().settings.bff_task_deadline_seconds
    store_for(redis_client).update(waiting.id, lambda t: t.evolve(created_at=time.time() - deadline - 1))

    reconcile_open_tasks()
    tripo.succeed(running.provider_task_id)
    poll_cycle()
    submit(waiting.id)

    sent = store_for(redis_client).get(waiting.id)
    assert sent.status == "pending" and sent.submission == "submitted"


def test_openai_edits_are_limited_per_rolling_window(client, redis_client, limits, requests_mock):
    import base64

    limits(bff_openai_tasks_per_minute=2, bff_openai_window_seconds=0.5)
    image = base64.b64encode(encoded("PNG", (8, 8))).decode()
    edits = requests_mock.post("https://api.openai.com/v1/images/edits",
                               json={"created": 1, "data": [{"b64_json": image}]})
    ids = [client.post("/generate/image-to-image", content_type="multipart/form-data",
                       data={"image": (io.BytesIO(encoded("PNG")), "a.png"), "prompt": "x"}).get_json()["task_id"]
           for _ in range(3)]
    for task_id in ids:
        submit(task_id)

    assert edits.call_count == 2 and store_for(redis_client).get(ids[2]).submission == "waiting"
    wait_until(lambda: store_for(redis_client).free_capacity(_openai_bucket()) > 0)
    reconcile_open_tasks()
    submit(ids[2])
    assert edits.call_count == 3 and store_for(redis_client).get(ids[2]).status == "completed"


def _openai_bucket():
    from bff.tasks.capacity import bucket_for

    return bucket_for("openai", "image_to_image", runtime.current().settings)


def test_a_vanished_slot_holder_gives_back_its_slot(redis_client, limits, tripo):
    limits(bff_tripo_concurrency=1)
    running, waiting = submit_all(redis_client, 2)
    redis_client.delete(task_key(running.id))  # expired, evicted or deleted by hand

    poll_cycle()
    submit(waiting.id)

    assert store_for(redis_client).get(waiting.id).submission == "submitted"


def test_a_vanished_waiting_task_does_not_block_its_queue(redis_client, limits, tripo):
    limits(bff_tripo_concurrency=1)
    running, vanished = submit_all(redis_client, 2)
    redis_client.delete(task_key(vanished.id))
    later = submit_all(redis_client, 1)[0]
    tripo.succeed(running.provider_task_id)

    poll_cycle()
    submit(later.id)

    assert store_for(redis_client).get(later.id).submission == "submitted"
