"""Why a request is refused, as exceptions the code below the routes raises.

Intake, idempotency and identity say *what* is wrong; ``bff.web.errors`` alone decides
which HTTP answer each reason gets.
"""

from __future__ import annotations

from bff.credits.book import CREDITS_EXHAUSTED, SERVICE_BUDGET_EXHAUSTED


class Refusal(Exception):
    """A request refused for a reason the client can act on; the message says which."""

    retry_after: int | None = None
    field_errors: dict | None = None
    reason: str | None = None  # a stable word for the app, in the body's ``reason``

    def __init__(self, message: str, *, retry_after: int | None = None, field_errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.field_errors = field_errors


class Unauthenticated(Refusal):
    """No acceptable credentials."""


class TokenRefused(Unauthenticated):
    """The user's sign-in token is missing or failed a check; ``reason`` names which."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class TaskNotFound(Refusal):
    """No such task for this client (another client's task is not found either)."""


class TaskNotReady(Refusal):
    """The task exists but is not in a state that allows this (not completed, not a model)."""


class InvalidInput(Refusal):
    """A field or header is invalid in a way the schemas cannot see."""


class InFlight(Refusal):
    """The same request is still being handled; retry shortly."""


class Unavailable(Refusal):
    """Something the answer needs cannot be had right now; retry after ``retry_after``."""


class RateLimited(Refusal):
    """This client is over a request limit; retry after ``retry_after`` seconds."""


class CreditsExhausted(Refusal):
    """The user's credits for today are used up; ``retry_after``: until the UTC day resets."""

    reason = CREDITS_EXHAUSTED


class ServiceBudgetExhausted(Refusal):
    """The whole service's credits for today are used up; ``retry_after``: until the day resets."""

    reason = SERVICE_BUDGET_EXHAUSTED
