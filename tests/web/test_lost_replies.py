"""A create whose reply is lost: the answer the client gets matches what will be billed.

Redis runs the create, then the connection drops before the reply arrives (a network
fault or a stalled Redis). The client is either told 202 for a task that exists, or an
error for a task that will never reach a provider; a retry with the same Idempotency-Key
gets the first 202 or makes the only task.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from bff.credits.book import ADMISSION_CHECK
from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.store import _create_script
from bff.web import create_app
from tests.conftest import redis_port, wait_until
from tests.helpers import queued, store_for
from tests.redis_proxy import LossyRedisProxy

CREATE_SCRIPT = hashlib.sha1(_create_script(ADMISSION_CHECK).encode()).hexdigest().encode()
KEY = {"Idempotency-Key": "0b8e4f0e-4b8a-4f0e-9d8e-0c9a8b7e6d5c"}
BODY = {"prompt": "a lighthouse"}


@pytest.fixture
def proxy(redis_client):
    lossy = LossyRedisProxy(redis_port())
    yield lossy
    lossy.close()


@pytest.fixture
def client(settings, proxy):
    app = create_app(dataclasses.replace(settings, redis_url=proxy.url))
    test_client = app.test_client()
    assert test_client.get("/readyz").status_code == 200  # connected, script loaded through the proxy
    return test_client


def open_tasks(redis_client) -> list:
    store = store_for(redis_client)
    return store.get_many(store.open_task_ids())


@pytest.mark.parametrize("headers", [{}, KEY], ids=["no key", "with key"])
@pytest.mark.parametrize("losses", [1, 2], ids=["reply lost once", "reply lost twice"])
def test_a_lost_reply_still_gets_the_202_of_the_one_task_recorded(client, proxy, redis_client, headers, losses):
    proxy.lose_replies(CREATE_SCRIPT, times=losses)

    response = client.post("/generate/text-to-model", json=BODY, headers=headers)

    assert proxy.lost == losses
    assert response.status_code == 202, response.get_json()
    tasks = open_tasks(redis_client)
    assert [task.id for task in tasks] == [response.get_json()["task_id"]]
    assert queued(redis_client, SUBMIT_QUEUE) == 1
    if headers:
        retry = client.post("/generate/text-to-model", json=BODY, headers=headers)
        assert retry.status_code == 202 and retry.headers["Idempotent-Replayed"] == "true"
        assert retry.get_json()["task_id"] == response.get_json()["task_id"]
        assert len(open_tasks(redis_client)) == 1


@pytest.mark.parametrize("headers", [{}, KEY], ids=["no key", "with key"])
def test_a_503_after_the_create_ran_never_leads_to_a_provider_call(client, proxy, redis_client, headers):
    # The create runs, its reply is lost, and Redis stays unreachable past the request's budget.
    proxy.lose_replies(CREATE_SCRIPT, times=1, then_refuse=True)

    response = client.post("/generate/text-to-model", json=BODY, headers=headers)

    assert response.status_code == 503 and response.headers["Retry-After"]
    recorded = open_tasks(redis_client)
    assert len(recorded) == 1  # the create did run
    proxy.refuse(False)
    # Settled in the background: withdrawn before any worker could send it.
    wait_until(lambda: not open_tasks(redis_client), timeout=10)
    withdrawn = store_for(redis_client).get(recorded[0].id)
    assert withdrawn.status == "failed" and withdrawn.error.code == "request_not_accepted"
    assert withdrawn.submission == "not_submitted" and queued(redis_client, SUBMIT_QUEUE) == 0
    if headers:
        retry = client.post("/generate/text-to-model", json=BODY, headers=headers)
        assert retry.status_code == 202 and "Idempotent-Replayed" not in retry.headers
        assert retry.get_json()["task_id"] != recorded[0].id
        assert [task.id for task in open_tasks(redis_client)] == [retry.get_json()["task_id"]]


def test_a_create_that_never_ran_is_void_for_good(client, proxy, redis_client, monkeypatch):
    from bff.tasks.store import TaskVoided, task_key
    from bff.web.unsettled import UnsettledCreates

    unsettled = []  # the task the request could not settle in time (observed, not changed)
    settle_later = UnsettledCreates.settle_later
    monkeypatch.setattr(UnsettledCreates, "settle_later",
                        lambda self, task, claim: unsettled.append(task) or settle_later(self, task, claim))
    proxy.refuse()

    response = client.post("/generate/text-to-model", json=BODY, headers=KEY)

    assert response.status_code == 503
    proxy.refuse(False)
    [task] = unsettled
    wait_until(lambda: redis_client.get(task_key(task.id)) == b"void", timeout=10)  # settled in the background
    with pytest.raises(TaskVoided):
        store_for(redis_client).create(task)  # as a create reaching Redis late would: it writes nothing
    retry = client.post("/generate/text-to-model", json=BODY, headers=KEY)
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry.headers
    assert [open_task.id for open_task in open_tasks(redis_client)] == [retry.get_json()["task_id"]]


@pytest.mark.parametrize("headers", [{}, KEY], ids=["no key", "with key"])
def test_a_conversion_whose_transaction_reply_is_lost_is_the_one_new_task_and_is_sent(client, proxy, redis_client,
                                                                                      headers):
    from bff.tasks import conversions
    from tests.helpers import completed_model

    model = completed_model(redis_client)
    proxy.lose_replies(b"$4\r\nEXEC\r\n", times=1)  # the transaction that holds the create script ran

    response = client.post("/generate/convert-model", json={"model_task_id": model.id, "format": "stl"},
                           headers=headers)

    assert proxy.lost == 1
    assert response.status_code == 202, response.get_json()  # its own new task: not a reuse, not a replay
    assert "Idempotent-Replayed" not in response.headers
    conversion = store_for(redis_client).get(response.get_json()["task_id"])
    assert conversion.kind == "convert_model" and conversion.params[conversions.SOURCE] == model.id
    assert queued(redis_client, SUBMIT_QUEUE) == 1  # sent now, not after reconciliation's nudge
