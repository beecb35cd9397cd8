"""Credits at the HTTP boundary: a request over the user's allowance is a 429, over the
service's budget a 503, each with its reason and Retry-After until midnight UTC, and
records, queues and sends nothing; a replay reserves nothing; conversions pay too;
GET /me shows what the user has left and what each route costs; plans come from the
user's token claims."""

from __future__ import annotations

import dataclasses
import time

import pytest

from bff.credits.book import seconds_until_reset
from bff.tasks.queue import SUBMIT_QUEUE
from bff.web import create_app
from sandbox.identity import SANDBOX_AUDIENCE
from tests.conftest import redis_port, wait_until
from tests.helpers import TEST_CLIENT, completed_model, queued, store_for
from tests.redis_proxy import LossyRedisProxy
from tests.web.test_lost_replies import CREATE_SCRIPT

TEXT = "/generate/text-to-model"
KEY = {"Idempotency-Key": "3e5b1a0c-7d2f-4e1b-9c3a-5f6e7d8c9b0a"}
DEFAULT_PRICES = {"text-to-model": 20, "sketch-to-model": 30, "image-to-model": 30, "refine-model": 20,
                  "convert-model": 10, "image-to-image": 5}


@pytest.fixture
def make_client(settings):
    """Test clients of apps made with changed settings."""
    made = []

    def make(**changes):
        app = create_app(dataclasses.replace(settings, **changes))
        made.append(app)
        return app.test_client()

    yield make
    for app in made:
        app.extensions["bff"].metrics.close()


def post_text(client, headers: dict | None = None, texture: bool = True):
    return client.post(TEXT, json={"prompt": "a fox", "texture": texture}, headers=headers)


def open_task_count(redis_client) -> int:
    return len(store_for(redis_client).open_task_ids())


def test_a_request_over_the_allowance_is_a_429_that_records_queues_and_sends_nothing(make_client, redis_client):
    client = make_client(bff_user_daily_credits=40)
    assert [post_text(client).status_code for _ in range(2)] == [202, 202]

    refused = post_text(client)

    body = refused.get_json()
    assert (refused.status_code, body["code"], body["reason"]) == (429, 429, "credits_exhausted")
    assert "midnight UTC" in body["message"]
    assert abs(int(refused.headers["Retry-After"]) - seconds_until_reset(time.time())) <= 2
    assert open_task_count(redis_client) == 2 and queued(redis_client, SUBMIT_QUEUE) == 2


def test_a_request_over_the_service_budget_is_a_503_for_every_user(make_client, redis_client):
    client = make_client(bff_service_daily_credits=30)
    assert post_text(client).status_code == 202

    refused = post_text(client)

    assert (refused.status_code, refused.get_json()["reason"]) == (503, "service_budget_exhausted")
    assert int(refused.headers["Retry-After"]) > 0
    assert open_task_count(redis_client) == 1
    assert post_text(client, texture=False).status_code == 202  # the last 10 credits still fit


def test_a_replay_reserves_nothing_and_a_refused_key_can_be_used_again(make_client, redis_client):
    client = make_client(bff_user_daily_credits=20)
    first = post_text(client, KEY)
    replay = post_text(client, KEY)
    other_key = {"Idempotency-Key": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}
    assert post_text(client, other_key).status_code == 429
    services = client.application.extensions["bff"]
    services.credits.book.grant(TEST_CLIENT, 20, "test")

    again = post_text(client, other_key)

    assert (first.status_code, replay.status_code, replay.headers["Idempotent-Replayed"]) == (202, 202, "true")
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert services.credits.book.summary(TEST_CLIENT, allowance=20)["reserved"] == 40


def test_a_conversion_reserves_its_price_and_one_the_model_already_has_costs_nothing(make_client, redis_client):
    client = make_client(bff_user_daily_credits=15)
    model = completed_model(redis_client)
    convert = {"model_task_id": model.id, "format": "usdz"}

    first = client.post("/generate/convert-model", json=convert)
    reused = client.post("/generate/convert-model", json=convert)
    refused = client.post("/generate/convert-model", json={**convert, "format": "stl"})

    assert (first.status_code, reused.status_code, refused.status_code) == (202, 200, 429)
    assert [task.params["format"] for task in store_for(redis_client).conversions(model.id)] == ["usdz"]
    assert client.get("/me").get_json()["reserved"] == 10


def test_me_shows_today_s_credits_and_the_price_of_each_route(make_client):
    client = make_client(bff_user_daily_credits=100)
    post_text(client)
    post_text(client, texture=False)

    me = client.get("/me")

    assert me.status_code == 200
    body = me.get_json()
    assert {name: body[name] for name in ("user", "plan", "allowance", "granted", "charged", "reserved",
                                          "remaining")} == {
        "user": TEST_CLIENT, "plan": None, "allowance": 100, "granted": 0, "charged": 0, "reserved": 30,
        "remaining": 70}
    assert body["resets_at"].endswith("T00:00:00Z") and body["day"] < body["resets_at"]
    assert body["prices"] == DEFAULT_PRICES


def test_me_without_credit_settings_is_unlimited_and_nothing_is_counted(make_client, redis_client):
    client = make_client(bff_openai_credits_per_image=7)
    post_text(client)

    body = client.get("/me").get_json()

    assert (body["allowance"], body["remaining"], body["reserved"]) == (None, None, 0)
    assert body["prices"] == {**DEFAULT_PRICES, "image-to-image": 7}
    assert redis_client.keys("bff:credits:*") == []


@pytest.mark.parametrize("claims, accepted, allowance", [
    ({"sub": "u1", "app_metadata": {"plan": "pro"}}, 3, 60),
    ({"sub": "u1", "app_metadata": {"plan": "free"}}, 1, 20),  # a plan with no allowance of its own
    ({"sub": "u1"}, 1, 20),
])
def test_a_plan_in_the_user_s_token_sets_their_allowance(make_client, issuer, claims, accepted, allowance):
    client = make_client(bff_auth_issuer=issuer.url, bff_auth_audience=SANDBOX_AUDIENCE, bff_user_daily_credits=20,
                         bff_plan_claim="app_metadata.plan", bff_plan_daily_credits={"pro": 60, "team": 200})
    signed_in = {"Authorization": f"Bearer {issuer.token(**claims)}"}

    statuses = [post_text(client, signed_in).status_code for _ in range(4)]

    assert statuses == [202] * accepted + [429] * (4 - accepted)
    me = client.get("/me", headers=signed_in).get_json()
    assert (me["allowance"], me["plan"]) == (allowance, claims.get("app_metadata", {}).get("plan"))


@pytest.fixture
def proxy(redis_client):
    lossy = LossyRedisProxy(redis_port())
    yield lossy
    lossy.close()


def test_a_create_whose_reply_is_lost_reserves_once(make_client, proxy):
    client = make_client(redis_url=proxy.url, bff_user_daily_credits=100)
    proxy.lose_replies(CREATE_SCRIPT, times=2)

    assert post_text(client).status_code == 202

    assert proxy.lost == 2
    me = client.get("/me").get_json()
    assert (me["reserved"], me["remaining"]) == (20, 80)


def test_a_task_answered_503_after_its_create_ran_is_refunded_in_full(make_client, proxy, redis_client):
    client = make_client(redis_url=proxy.url, bff_user_daily_credits=100)
    proxy.lose_replies(CREATE_SCRIPT, times=1, then_refuse=True)

    assert post_text(client).status_code == 503

    proxy.refuse(False)
    wait_until(lambda: not store_for(redis_client).open_task_ids(), timeout=10)  # withdrawn in the background
    me = client.get("/me").get_json()
    assert (me["charged"], me["reserved"], me["remaining"]) == (0, 0, 100)


def test_the_api_documents_me_and_the_refusal_reason(client):
    spec = client.get("/openapi.json").get_json()

    me = spec["paths"]["/me"]["get"]
    assert {"200", "401", "429"} <= set(me["responses"])
    assert "prices" in spec["components"]["schemas"]["MeResponse"]["properties"]
    reason = spec["components"]["schemas"]["ErrorResponse"]["properties"]["reason"]
    assert "credits_exhausted" in reason["description"] and "service_budget_exhausted" in reason["description"]
