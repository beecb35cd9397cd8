"""The operator commands ``flask credits show|grant|spend``, through Flask's CLI runner
(the real ``flask --app wsgi`` process: tests/processes/test_credits.py)."""

from __future__ import annotations

import dataclasses

import pytest

from bff.web import create_app
from sandbox.identity import SANDBOX_AUDIENCE
from tests.helpers import TEST_CLIENT, store_for


@pytest.fixture
def app(settings):
    built = create_app(dataclasses.replace(settings, bff_user_daily_credits=100, bff_service_daily_credits=1000))
    yield built
    built.extensions["bff"].metrics.close()


def run(app, *args: str):
    result = app.test_cli_runner().invoke(args=["credits", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_grant_adds_credits_for_today_and_show_lists_them_with_the_ledger(app, client):
    client.post("/generate/text-to-model", json={"prompt": "a fox"})

    granted = run(app, "grant", TEST_CLIENT, "50", "--reason", "support ticket 42")
    shown = run(app, "show", TEST_CLIENT)

    assert f"granted 50 credits to {TEST_CLIENT}" in granted
    lines = shown.splitlines()
    assert "allowance 150 (50 granted), charged 0, reserved 20, remaining 130" in lines[0]
    assert lines[1].endswith("charged 0, reserved 20, granted 50")
    assert "reserve 20 task " in lines[2] and lines[2].endswith("(text_to_model)")
    assert lines[3].endswith("grant 50 (support ticket 42)")
    assert client.get("/me").get_json()["remaining"] == 130


def test_show_gives_the_allowance_of_the_user_s_last_request_such_as_their_plan_s(settings, redis_client, issuer):
    app = create_app(dataclasses.replace(settings, bff_auth_issuer=issuer.url, bff_auth_audience=SANDBOX_AUDIENCE,
                                         bff_user_daily_credits=100, bff_plan_claim="plan",
                                         bff_plan_daily_credits={"pro": 2000}))
    signed_in = {"Authorization": f"Bearer {issuer.token(sub='pro-user', plan='pro')}"}
    accepted = app.test_client().post("/generate/text-to-model", json={"prompt": "a fox", "texture": False},
                                      headers=signed_in)
    user = store_for(redis_client).get(accepted.get_json()["task_id"]).client

    assert "allowance 2000 (0 granted), charged 0, reserved 10, remaining 1990" in run(app, "show", user)
    assert "allowance 100 (0 granted)" in run(app, "show", "someone-else")
    app.extensions["bff"].metrics.close()


def test_spend_lists_the_service_s_credits_per_day(app, client):
    client.post("/generate/text-to-model", json={"prompt": "a fox", "texture": False})

    spent = run(app, "spend", "--days", "2").splitlines()

    assert spent[0] == "daily budget: 1000"
    assert spent[1].endswith(": charged 0, reserved 10, refunded 0")
    assert spent[2].endswith(": charged 0, reserved 0, refunded 0") and len(spent) == 3


def test_a_grant_of_nothing_is_refused(app):
    result = app.test_cli_runner().invoke(args=["credits", "grant", TEST_CLIENT, "0"])

    assert result.exit_code != 0 and "0" in result.output

