"""What a finished task is charged: the one table of who pays for which ending.

- Completed: what the provider reports it consumed (Tripo's ``credits_consumed``, rounded
  up), else the reserved price (an OpenAI edit); the rest of the reservation returns.
- A task whose provider call never left (no ``sending_at``) cost nothing: full refund,
  whatever its error code (a timeout in the capacity queue, a withdrawn request...).
- Otherwise the error code decides, by ``FAILURE_BILLING``: not billed (the provider
  refused or failed it, and Tripo refunds failed tasks): full refund; maybe billed (the
  call's fate is unknown): the user is refunded but the credits stay spent in the
  service's budget; billed (the provider made the result): charged the price.
- A failed Tripo task that still reports credits consumed is charged them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from bff.tasks.record import COMPLETED, Task

NOT_BILLED = "not_billed"
MAYBE_BILLED = "maybe_billed"
BILLED = "billed"

# Every error code of bff.tasks.error_codes, for a task whose provider call left.
FAILURE_BILLING: dict[str, str] = {
    "timeout": MAYBE_BILLED,  # the provider may still finish (and bill) it
    "provider_failed": NOT_BILLED,
    "provider_cancelled": NOT_BILLED,
    "provider_expired": NOT_BILLED,
    "content_policy": NOT_BILLED,
    "invalid_request": NOT_BILLED,
    "provider_outcome_unknown": MAYBE_BILLED,
    "provider_unavailable": NOT_BILLED,  # only failures that provably cost nothing end so
    "provider_task_lost": MAYBE_BILLED,
    "provider_auth_failed": NOT_BILLED,
    "provider_access_denied": NOT_BILLED,
    "provider_insufficient_credit": NOT_BILLED,
    "provider_model_invalid": NOT_BILLED,
    "provider_error": NOT_BILLED,
    "request_not_accepted": NOT_BILLED,  # never sent: caught by the sending_at rule too
    "result_not_kept": BILLED,
    # The provider made the result; the service could not keep its files.
    "result_storage_failed": BILLED,
    "result_too_large": BILLED,
    "result_invalid": BILLED,
    "result_unavailable": BILLED,
    "internal_error": MAYBE_BILLED,  # the service failed around a call that had left
}

COMPLETED_REASON = "completed"


@dataclass(frozen=True)
class Release:
    """How to release a task's reservation: ``charged`` credits (None: a full refund,
    kept in the service's budget when ``keep_in_service_budget``), with a ledger reason."""

    reason: str
    charged: int | None = None
    keep_in_service_budget: bool = False


def release_for(task: Task, price: int) -> Release:
    """How a terminal ``task`` whose reservation was ``price`` settles."""
    consumed = None if task.credits_consumed is None else math.ceil(Decimal(str(task.credits_consumed)))
    if task.status == COMPLETED:
        return Release(COMPLETED_REASON, charged=price if consumed is None else consumed)
    code = task.error.code if task.error else "internal_error"
    if consumed:
        return Release(code, charged=consumed)
    if task.sending_at is None:
        return Release(code)
    billing = FAILURE_BILLING[code]
    if billing == BILLED:
        return Release(code, charged=price)
    return Release(code, keep_in_service_budget=billing == MAYBE_BILLED)
