"""The submission lifecycle: every change a worker or reconciliation makes to a task, as
pure functions of the record. The product's money safety rests on these rules: one
provider create call per task, never re-sent when its outcome is unknown.

Submission states (``Task.submission``) and the transitions between them::

                 claim_or_wait (no room)                   claim_or_wait (room; oldest first)
    not_submitted ─────────────────────▶ waiting ─────────────────────────────────┐
        │   ▲                                                                     ▼
        │   │  retry_later (a 429, or a fault that provably never left)        claimed
        │   ├───────────────────────────────────────────────────────────────── │  │
        │   │  release_unsent_claim (its worker died before mark_sending)       │  │ mark_sending
        │   └───────────────────────────────────────────────────────────────── │  ▼
        │                                                               claimed, sending_at set
        └── claim_or_wait (room) ───────────────────────────▶ claimed          │
                                                                               │ sent / completed_by_provider
                                                                               ▼
                                                           submitted ── settle_from_read ──▶ completed | failed
                                                                     └──── provider_lost ────▶ failed

    A task whose request was answered with an error is ``withdraw``n before it is claimed.
    From any open state: ``fail`` (deadline, a final provider answer, an outcome that
    cannot be known). A terminal record is final: the store applies no change to it.

Every transition returns the new record, or None when there is nothing to write. The
ones a worker makes on the strength of its claim take ``seen``, the record as the worker
claimed it, and write nothing once ``same_attempt`` is false: a stalled worker cannot
act on a claim it has lost. The store applies them in optimistic transactions, so they
may run more than once and must stay free of side effects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .error_codes import task_error
from .record import CLAIMED, COMPLETED, NOT_SUBMITTED, PENDING, PROCESSING, SUBMITTED, WAITING, Task, TaskError

if TYPE_CHECKING:
    from bff.providers.tripo_status import TripoSnapshot

TaskChange = Callable[[Task], Task | None]


def same_attempt(current: Task, seen: Task) -> bool:
    """Still in the submission state ``seen`` was in: nobody (another worker,
    reconciliation) has moved it on since."""
    return current.submission == seen.submission and current.claimed_at == seen.claimed_at


def deadline_at(task: Task, deadline_seconds: float) -> float:
    """The one deadline rule: counted from creation, or from when the task left the
    capacity queue; time spent waiting in that queue does not count."""
    return (task.deadline_from or task.created_at) + deadline_seconds


def past_deadline(task: Task, now: float, deadline_seconds: float) -> bool:
    return task.submission != WAITING and now > deadline_at(task, deadline_seconds)


def claim_or_wait(task: Task, *, admitted: bool, now: float, deadline_seconds: float,
                  worker: str | None = None) -> Task | None:
    """What a submit message does: claim the right to send (``admitted``: the capacity
    bucket has room for this task after every older waiting one), queue for capacity, or
    fail a task whose deadline passed before it could be sent (too late to start paying)."""
    if task.submission not in (NOT_SUBMITTED, WAITING):
        return None
    if past_deadline(task, now, deadline_seconds):
        return task.failed(task_error("timeout"))
    if not admitted:
        return task.evolve(submission=WAITING) if task.submission != WAITING else None
    # Time spent queued for capacity does not count against the deadline.
    deadline_from = now if task.submission == WAITING else task.deadline_from
    return task.evolve(submission=CLAIMED, claimed_at=now, claimed_by=worker, deadline_from=deadline_from)


def mark_sending(current: Task, seen: Task, now: float, *, status: str | None = None) -> Task | None:
    """The provider call is about to leave. Before this, a dead worker sent nothing (the
    task may be sent again); after it, the call may have been billed."""
    if not same_attempt(current, seen) or current.sending_at is not None:
        return None
    return current.evolve(sending_at=now, status=status or current.status)


def sent(current: Task, seen: Task, *, provider_task_id: str, now: float) -> Task | None:
    """The provider accepted the create call; the poller follows the task from here."""
    if not same_attempt(current, seen):
        return None
    return current.evolve(submission=SUBMITTED, provider_task_id=provider_task_id, submitted_at=now)


def completed_by_provider(current: Task, seen: Task, *, outputs: dict, provider_request_id: str | None,
                          now: float) -> Task | None:
    """A provider that answers with the result itself (an OpenAI edit): done in one step."""
    if not same_attempt(current, seen):
        return None
    return current.evolve(status=COMPLETED, progress=100, submission=SUBMITTED, submitted_at=now,
                          provider_request_id=provider_request_id, outputs=outputs)


def retry_later(current: Task, seen: Task, *, rate_limited: bool, next_attempt_at: float) -> Task | None:
    """Back to not submitted, to be sent again at ``next_attempt_at``. Only for failures
    that provably cost nothing: a 429, or a request that never left."""
    if not same_attempt(current, seen):
        return None
    return current.evolve(
        status=PENDING, progress=0, submission=NOT_SUBMITTED, claimed_at=None, claimed_by=None, sending_at=None,
        submit_faults=current.submit_faults + (0 if rate_limited else 1), submit_tries=current.submit_tries + 1,
        next_attempt_at=next_attempt_at,
    )


def fail(current: Task, seen: Task, error: TaskError, **changes) -> Task | None:
    if not same_attempt(current, seen):
        return None
    return current.failed(error, **changes)


def release_unsent_claim(current: Task, seen: Task, now: float) -> Task | None:
    """The claimant died before its call left: nothing was sent, so the task may be sent again."""
    if not same_attempt(current, seen) or current.sending_at is not None:
        return None
    return current.evolve(submission=NOT_SUBMITTED, claimed_at=None, claimed_by=None, next_attempt_at=now)


def nudge(current: Task, now: float) -> Task | None:
    """A task not yet sent whose message is overdue: due again now."""
    return current.evolve(next_attempt_at=now) if current.submission == NOT_SUBMITTED else None


def provider_lost(current: Task) -> Task | None:
    """The provider no longer knows a task it accepted."""
    return current.failed(task_error("provider_task_lost")) if current.submission == SUBMITTED else None


def withdraw(current: Task, seen: Task) -> Task | None:
    """End a task whose request was answered with an error (its create's outcome was
    unknown then), before any worker claims it: the client was told it failed."""
    if current.submission != NOT_SUBMITTED or not same_attempt(current, seen):
        return None
    return current.failed(task_error("request_not_accepted"))


def settle_from_read(current: Task, snapshot: TripoSnapshot) -> Task | None:
    """What a provider read says about a submitted task; None when nothing changed.
    Progress never goes backwards while the task runs."""
    if current.submission != SUBMITTED:
        return None
    if snapshot.status == PROCESSING:
        progress = max(current.progress, snapshot.progress)
    else:
        progress = snapshot.progress
    changes = {
        "status": snapshot.status,
        "progress": progress,
        "outputs": snapshot.outputs or current.outputs,
        "error": snapshot.error,
        "provider_error_code": snapshot.provider_error_code,
        "credits_consumed": snapshot.credits_consumed,
    }
    if all(getattr(current, name) == value for name, value in changes.items()):
        return None
    return current.evolve(**changes)
