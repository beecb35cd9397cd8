"""Credits through the real worker paths, providers mocked at the HTTP boundary: each way a
task ends charges or refunds its reservation exactly once, whatever runs twice; a worker
killed mid-call is settled by reconciliation."""

from __future__ import annotations

import base64
import dataclasses
import io
import time

import pytest

from tests.conftest import TRIPO_BASE_URL
from tests.helpers import TEST_CLIENT, poll_cycle, reconcile_open_tasks, submit
from tests.images import encoded
from workers.heartbeat import TTL_SECONDS

PRICE = 20  # a textured text-to-model
CREATE_URL = f"{TRIPO_BASE_URL}/generation/text-to-model"
EDITS_URL = "https://api.openai.com/v1/images/edits"


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, bff_user_daily_credits=100, bff_service_daily_credits=1000)


def accepted(client) -> str:
    response = client.post("/generate/text-to-model", json={"prompt": "a fox"})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["task_id"]


def credits_of(worker_runtime) -> tuple:
    """(user charged, user reserved, service charged, service refunded) today."""
    book = worker_runtime.services.credits.book
    user, service = book.summary(TEST_CLIENT, allowance=100), book.service_totals(1)[0]
    return user["charged"], user["reserved"], service["charged"], service["refunded"]


@pytest.mark.parametrize("consumed, expected", [
    (12, (12, 0, 12, 8)),  # below the reservation: the rest returns
    (35, (35, 0, 35, 0)),  # above it: charged as Tripo reports
    (None, (20, 0, 20, 0)),  # not reported: the price
])
def test_a_completed_task_is_charged_what_tripo_reports(client, worker_runtime, tripo, consumed, expected):
    task_id = accepted(client)
    submit(task_id)
    provider_id = worker_runtime.store.get(task_id).provider_task_id
    tripo.succeed(provider_id)
    tripo.set_task(provider_id, "success", 100, credits_consumed=consumed)
    assert credits_of(worker_runtime) == (0, PRICE, 0, 0)

    poll_cycle()
    poll_cycle()  # read again: nothing moves twice

    assert worker_runtime.store.get(task_id).status == "completed"
    assert credits_of(worker_runtime) == expected


def test_a_task_tripo_fails_is_refunded_in_full(client, worker_runtime, tripo):
    task_id = accepted(client)
    submit(task_id)
    tripo.set_task(worker_runtime.store.get(task_id).provider_task_id, "failed", 30, credits_consumed=0)

    poll_cycle()

    assert worker_runtime.store.get(task_id).error.code == "provider_failed"
    assert credits_of(worker_runtime) == (0, 0, 0, PRICE)


def test_a_create_refused_under_the_content_policy_is_refunded_in_full(client, worker_runtime, requests_mock):
    requests_mock.post(CREATE_URL, status_code=400, json={"code": 2008, "message": "policy"})
    task_id = accepted(client)

    submit(task_id)
    submit(task_id)  # a message delivered twice

    assert worker_runtime.store.get(task_id).error.code == "content_policy"
    assert credits_of(worker_runtime) == (0, 0, 0, PRICE)


def test_an_ambiguous_create_is_refunded_to_the_user_but_stays_in_the_service_budget(client, worker_runtime,
                                                                                     requests_mock):
    requests_mock.post(CREATE_URL, status_code=500, json={"code": 1001, "message": "server error"})
    task_id = accepted(client)

    submit(task_id)

    assert worker_runtime.store.get(task_id).error.code == "provider_outcome_unknown"
    assert credits_of(worker_runtime) == (0, 0, PRICE, 0)


def test_a_task_whose_deadline_passed_before_it_was_sent_is_refunded_in_full(client, worker_runtime, tripo):
    task_id = accepted(client)
    deadline = worker_runtime.settings.bff_task_deadline_seconds
    worker_runtime.store.update(task_id, lambda task: task.evolve(created_at=time.time() - deadline - 1))

    submit(task_id)

    assert worker_runtime.store.get(task_id).error.code == "timeout" and tripo.create_bodies() == []
    assert credits_of(worker_runtime) == (0, 0, 0, PRICE)


def test_a_worker_killed_mid_call_is_settled_by_reconciliation_once(client, worker_runtime, tripo):
    task_id = accepted(client)
    claimed_at = time.time() - TTL_SECONDS - 1  # its heartbeat is gone
    worker_runtime.store.update(task_id, lambda task: task.evolve(
        submission="claimed", claimed_at=claimed_at, claimed_by="dead-worker", sending_at=claimed_at))

    reconcile_open_tasks()
    reconcile_open_tasks()
    submit(task_id)  # its message, redelivered

    assert worker_runtime.store.get(task_id).error.code == "provider_outcome_unknown"
    assert tripo.create_bodies() == []
    assert credits_of(worker_runtime) == (0, 0, PRICE, 0)


def test_an_openai_edit_is_charged_its_price_per_image(client, worker_runtime, requests_mock):
    form = {"image": (io.BytesIO(encoded("PNG")), "sketch.png"), "prompt": "a robot", "n": "3"}
    response = client.post("/generate/image-to-image", data=form, content_type="multipart/form-data")
    image = {"b64_json": base64.b64encode(encoded("PNG")).decode()}
    requests_mock.post(EDITS_URL, json={"created": 1, "data": [image] * 3})

    submit(response.get_json()["task_id"])

    assert credits_of(worker_runtime) == (15, 0, 15, 0)
