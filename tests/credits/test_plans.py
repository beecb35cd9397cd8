"""A user's daily allowance from the plan named in their token claims."""

from __future__ import annotations

import pytest

from bff.credits.plans import allowance_for, plan_of
from bff.settings import Settings, SettingsError
from tests.helpers import MINIMAL_LIVE_ENVIRON

PLANS = {"pro": 2000, "team": 10000}


def allowance(claims: dict | None, plan_claim: str = "app_metadata.plan", default: int | None = 100):
    return allowance_for(plan_of(claims, plan_claim), plan_allowances=PLANS, default=default)


def test_a_known_plan_at_the_dotted_path_gives_its_allowance():
    assert allowance({"sub": "u1", "app_metadata": {"plan": "team"}}) == 10000
    assert allowance({"plan": "pro"}, plan_claim="plan") == 2000
    # Auth0 namespaces custom claims with a URL: the claim's own name holds dots.
    assert allowance({"https://makeit3d.app/plan": "team"}, plan_claim="https://makeit3d.app/plan") == 10000


@pytest.mark.parametrize("claims", [
    None,  # no signed-in user
    {"sub": "u1"},
    {"app_metadata": {"plan": "enterprise"}},  # a plan nobody configured
    {"app_metadata": "pro"},  # the path leads through something that is not an object
    {"app_metadata": {"plan": ["pro"]}},
])
def test_a_user_without_a_known_plan_gets_the_default(claims):
    assert allowance(claims) == 100
    assert allowance(claims, default=None) is None


def test_without_a_plan_claim_everyone_gets_the_default():
    assert plan_of({"app_metadata": {"plan": "pro"}}, "") is None
    assert allowance({"app_metadata": {"plan": "pro"}}, plan_claim="") == 100


def test_the_plan_name_is_what_the_token_says_even_when_it_has_no_allowance():
    assert plan_of({"app_metadata": {"plan": "free"}}, "app_metadata.plan") == "free"


def test_the_credit_settings_read_plans_and_leave_limits_unset_by_default():
    required = MINIMAL_LIVE_ENVIRON
    settings = Settings.from_env({**required, "BFF_PLAN_CLAIM": "plan",
                                  "BFF_PLAN_DAILY_CREDITS": "pro=2000, team=10000"})

    assert settings.bff_plan_daily_credits == PLANS
    assert (settings.bff_user_daily_credits, settings.bff_service_daily_credits) == (None, None)
    assert settings.bff_ledger_days == 90
    for name, value in (("BFF_PLAN_DAILY_CREDITS", "pro"), ("BFF_USER_DAILY_CREDITS", "lots"),
                        ("BFF_SERVICE_DAILY_CREDITS", "-5")):
        with pytest.raises(SettingsError, match=f"^{name}"):
            Settings.from_env({**required, name: value})
