"""Which daily allowance a user has: a plan named in their identity token, or the default."""

from __future__ import annotations


def allowance_for(claims: dict, *, plan_claim: str | None, plan_allowances: dict[str, int],
                  default: int | None) -> int | None:
    """The daily credits of the plan found in ``claims`` at the dotted path ``plan_claim``
    (such as ``app_metadata.plan``); ``default`` (None: unlimited) for a user without a
    plan, or with a plan that ``plan_allowances`` does not name."""
    plan = _claim_at(claims, plan_claim) if plan_claim else None
    if isinstance(plan, str) and plan in plan_allowances:
        return plan_allowances[plan]
    return default


def _claim_at(claims: dict, dotted_path: str):
    value = claims
    for name in dotted_path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value
