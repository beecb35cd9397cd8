"""The task store's transactions under contention, and the index entries a record keeps."""

from __future__ import annotations

import time

import pytest

from bff.providers.tripo_status import snapshot_from_tripo
from bff.tasks import lifecycle
from bff.tasks import store as store_module
from bff.tasks.capacity import bucket_for
from bff.tasks.record import IMAGES, MODEL, STORING, SUBMITTED, Kind, Service, Task
from bff.tasks.store import TransactionContention, task_key
from tests.helpers import completed_model, new_text_task, store_for


def test_a_writer_that_keeps_losing_gets_a_real_transaction_contention(redis_client, monkeypatch):
    monkeypatch.setattr(store_module, "_TRANSACTION_ATTEMPTS", 3)
    task = new_text_task(redis_client)
    record = redis_client.get(task_key(task.id))

    def change_that_is_always_overtaken(current):
        redis_client.set(task_key(task.id), record)  # another writer gets in first, every time
        return current.evolve(progress=current.progress + 1)

    with pytest.raises(TransactionContention, match="gave up after 3 conflicting writes"):
        store_for(redis_client).update(task.id, change_that_is_always_overtaken)
    assert store_for(redis_client).get(task.id).progress == 0


def test_contention_is_answered_503_with_retry_after(app, client):
    def contended():
        raise TransactionContention("gave up after 50 conflicting writes to bff:task:x")

    app.add_url_rule("/contended", "contended", contended)

    response = client.get("/contended")

    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["code"] == 503 and "bff:task" not in response.get_data(as_text=True)


def test_a_task_storing_its_files_is_no_longer_polled_nor_holds_a_provider_slot(redis_client, settings):
    store, task = store_for(redis_client), new_text_task(redis_client)
    bucket = bucket_for(task.service, task.kind, settings)
    store.update(task.id, lambda t: t.evolve(submission=SUBMITTED, provider_task_id="p-1", claimed_at=time.time(),
                                             submitted_at=time.time()))
    assert store.polling_task_ids(Service.TRIPO) == [task.id] and store.free_capacity(bucket) == bucket.limit - 1
    read = snapshot_from_tripo({"status": "success", "output": {"model_url": "https://t.test/m.glb"}})

    storing = store.update(task.id, lambda t: lifecycle.settle_from_read(t, read, now=time.time(),
                                                                         object_keys={MODEL: "results/k"}))

    assert storing is not None and not storing.is_terminal
    assert store.polling_task_ids(Service.TRIPO) == [] and store.free_capacity(bucket) == bucket.limit


def test_paid_images_kept_in_redis_go_in_the_write_that_completes_their_task(redis_client):
    store, task = store_for(redis_client), new_text_task(redis_client)
    store.save_images(task.id, [b"png-0", b"png-1"])
    store.update(task.id, lambda t: t.evolve(submission=STORING, object_keys={IMAGES: ["k0", "k1"]}))
    assert redis_client.exists(task_key(task.id, "images"))

    store.update(task.id, lambda t: lifecycle.files_stored(t, {IMAGES: 2}))

    assert not redis_client.exists(task_key(task.id, "images"))


def a_conversion(model: Task) -> Task:
    return Task.new(service=Service.TRIPO, kind=Kind.CONVERT_MODEL, request_id="r", client=model.client,
                    params={"model_task_id": model.id, "source_provider_task_id": model.provider_task_id,
                            "format": "usdz", "face_limit": 100000, "texture_size": 2048})


def test_a_conversion_recorded_meanwhile_is_found_rather_than_made_twice(redis_client, monkeypatch):
    model = completed_model(redis_client)
    store, competitor = store_for(redis_client), a_conversion(model)
    create_args = store_module.TaskStore._create_args

    def overtaken_once(self, task, *args):
        if task.id != competitor.id and not store_for(redis_client).conversions(model.id):
            store_for(redis_client).create_conversion(competitor)  # lands between the read and the write
        return create_args(self, task, *args)

    monkeypatch.setattr(store_module.TaskStore, "_create_args", overtaken_once)
    mine = a_conversion(model)

    assert store.create_conversion(mine) == competitor
    assert store.get(mine.id) is None and store.conversions(model.id) == [competitor]
