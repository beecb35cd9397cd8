"""Which daily allowance a user has: a plan named in their identity token, or the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bff.identity import claim_at


def plan_of(claims: Mapping[str, Any] | None, plan_claim: str) -> str | None:
    """The plan name at the dotted path ``plan_claim`` (such as ``app_metadata.plan``, or an
    Auth0 namespaced claim with dots of its own) of the token's ``claims``; None without
    claims, without a path, or without a name there."""
    if not plan_claim or claims is None:
        return None
    value = claim_at(claims, plan_claim)
    return value if isinstance(value, str) else None


def allowance_for(plan: str | None, *, plan_allowances: Mapping[str, int], default: int | None) -> int | None:
    """The plan's daily credits; ``default`` (None: unlimited) for a user without a plan,
    or with one ``plan_allowances`` does not name."""
    if plan is not None and plan in plan_allowances:
        return plan_allowances[plan]
    return default
