"""A user's daily allowance from the plan named in their token claims."""

from __future__ import annotations

import pytest

from bff.credits import allowance_for

PLANS = {"pro": 2000, "team": 10000}


def _allowance(claims: dict, plan_claim: str | None = "app_metadata.plan", default: int | None = 100):
    return allowance_for(claims, plan_claim=plan_claim, plan_allowances=PLANS, default=default)


def test_a_known_plan_at_the_dotted_path_gives_its_allowance():
    assert _allowance({"sub": "u1", "app_metadata": {"plan": "team"}}) == 10000
    assert _allowance({"plan": "pro"}, plan_claim="plan") == 2000


@pytest.mark.parametrize("claims", [
    {"sub": "u1"},
    {"app_metadata": {"plan": "enterprise"}},  # a plan nobody configured
    {"app_metadata": "pro"},  # the path leads through something that is not an object
    {"app_metadata": {"plan": ["pro"]}},
])
def test_a_user_without_a_known_plan_gets_the_default(claims):
    assert _allowance(claims) == 100
    assert _allowance(claims, default=None) is None


def test_without_a_plan_claim_everyone_gets_the_default():
    assert _allowance({"app_metadata": {"plan": "pro"}}, plan_claim=None) == 100
