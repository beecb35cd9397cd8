"""The credits as both roles use them, built once per process from the settings.

With no allowance and no budget configured, nothing is reserved or counted: a task is
recorded exactly as without credits. A task that carries a reservation is released when
it ends whatever the settings have become since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bff.settings import Settings
from bff.tasks.record import Task
from bff.tasks.store import Admission

from .book import CreditBook, Reservation, seconds_until_reset
from .plans import allowance_for, plan_of
from .pricing import price_of
from .settlement import release_for

# The reason a reservation whose task record vanished (expired, evicted) is released with.
TASK_RECORD_LOST = "task_record_lost"


class Credits:
    def __init__(self, settings: Settings, book: CreditBook):
        self._settings = settings
        self.book = book

    @property
    def enabled(self) -> bool:
        """Whether any allowance or budget is configured: only then are credits reserved."""
        settings = self._settings
        return (settings.bff_user_daily_credits is not None or settings.bff_service_daily_credits is not None
                or bool(settings.bff_plan_daily_credits))  # settings refuse plans without their claim

    @property
    def service_budget(self) -> int | None:
        return self._settings.bff_service_daily_credits

    def plan(self, claims: Mapping[str, Any] | None) -> str | None:
        return plan_of(claims, self._settings.bff_plan_claim)

    def allowance(self, claims: Mapping[str, Any] | None) -> int | None:
        """The user's daily credits before grants (None: unlimited)."""
        return allowance_for(self.plan(claims), plan_allowances=self._settings.bff_plan_daily_credits,
                             default=self._settings.bff_user_daily_credits)

    def price(self, task: Task) -> int:
        return price_of(task, self._settings)

    def reserve(self, task: Task, claims: Mapping[str, Any] | None) -> tuple[Task, Admission | None]:
        """The task carrying its reservation, with the admission its create must pass; the
        task as it is and None when credits are not enabled. The user is the task's client."""
        if not self.enabled:
            return task, None
        reservation = self.book.new_reservation(task.client, task.id, self.price(task), task.service)
        admission = self.book.admission(reservation, allowance=self.allowance(claims),
                                        service_budget=self.service_budget, reason=task.kind)
        return replace(task, reservation=reservation.as_dict()), admission

    def seconds_until_reset(self) -> int:
        return seconds_until_reset(self.book.now())

    def end_commands(self, task: Task) -> list[list]:
        """What the task store runs in the transaction that ends ``task``: the release of
        its reservation, as ``bff.credits.settlement`` decides (nothing without one)."""
        if task.reservation is None:
            return []
        reservation = Reservation.from_dict(task.id, task.reservation)
        release = release_for(task, reservation.price)
        if release.charged is not None:
            return self.book.settle_commands(reservation, release.charged, release.reason)
        return self.book.refund_commands(reservation, release.reason,
                                         keep_in_service_budget=release.keep_in_service_budget)

    def release_lost(self, task_ids: Iterable[str]) -> None:
        """Refund the reservations of tasks whose records are gone (they can never end):
        to the user, kept in the service's budget, since their calls may have been billed."""
        for task_id in task_ids:
            self.book.refund(task_id, TASK_RECORD_LOST, keep_in_service_budget=True)

    def standing(self, user: str, claims: Mapping[str, Any] | None) -> dict:
        """Today's credits of ``user``, with their plan."""
        return {**self.book.summary(user, allowance=self.allowance(claims)), "plan": self.plan(claims)}

    def spent_today(self) -> int:
        """What the service has charged or holds in flight today: what its budget counts."""
        today = self.book.service_totals(1)[0]
        return today["reserved"] + today["charged"]
