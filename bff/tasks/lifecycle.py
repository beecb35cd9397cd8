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
                                                               │     └──── provider_lost ────▶ failed
                             settle_from_read (a completed     │
                             read, object storage configured)  ▼
    claimed, sending_at set ── storing_after_call ──────────▶ storing ── files_stored ──▶ completed
      (paid images that storage could not take yet)            │  ▲  └── storing_failed ──▶ failed
                                                               └──┘ store_again_at (storage or source down)

    With object storage configured a task completes only once its files are in the bucket:
    ``storing`` is processing at 99 for the client, its deadline counts from when it began,
    and past it the task fails with a storage code (``deadline_error``).

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
from .record import (
    CLAIMED,
    COMPLETED,
    IMAGES,
    NOT_SUBMITTED,
    PENDING,
    PROCESSING,
    STORING,
    SUBMITTED,
    WAITING,
    Task,
    TaskError,
)

if TYPE_CHECKING:
    from bff.providers.tripo_status import TripoSnapshot

TaskChange = Callable[[Task], Task | None]


def same_attempt(current: Task, seen: Task) -> bool:
    """Still in the submission state ``seen`` was in: nobody (another worker,
    reconciliation) has moved it on since."""
    return current.submission == seen.submission and current.claimed_at == seen.claimed_at


def deadline_origin(task: Task) -> float:
    """The one deadline rule: counted from creation, from when the task left the capacity
    queue (time spent waiting in it does not count), or from when its files began
    storing (the storing deadline)."""
    return task.deadline_from or task.created_at


def deadline_at(task: Task, deadline_seconds: float) -> float:
    return deadline_origin(task) + deadline_seconds


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
                          now: float, object_keys: dict | None = None) -> Task | None:
    """A provider that answers with the result itself (an OpenAI edit): done in one step
    (with storage configured, once its files are stored under ``object_keys``)."""
    if not same_attempt(current, seen):
        return None
    return current.evolve(status=COMPLETED, progress=100, submission=SUBMITTED, submitted_at=now,
                          provider_request_id=provider_request_id, outputs=outputs,
                          object_keys={**current.object_keys, **(object_keys or {})})


def storing_after_call(current: Task, seen: Task, *, outputs: dict, provider_request_id: str | None, now: float,
                       object_keys: dict, next_attempt_at: float) -> Task | None:
    """A provider answered with the result itself, but storage could not take its files
    yet: they are kept elsewhere meanwhile, and storing is tried again at ``next_attempt_at``."""
    if not same_attempt(current, seen):
        return None
    answered = current.evolve(submitted_at=now, provider_request_id=provider_request_id)
    return _storing(answered, outputs=outputs, object_keys=object_keys, now=now, next_attempt_at=next_attempt_at)


def _storing(current: Task, *, outputs: dict, object_keys: dict, now: float, next_attempt_at: float) -> Task:
    # A fresh deadline: the provider's time must not eat the time to keep a paid result.
    return current.evolve(status=PROCESSING, progress=99, submission=STORING, outputs=outputs,
                          object_keys={**current.object_keys, **object_keys}, deadline_from=now,
                          next_attempt_at=next_attempt_at)


def files_stored(current: Task, outputs: dict) -> Task | None:
    """Every file is in the bucket: the task completes (``outputs`` as stored)."""
    if current.submission != STORING:
        return None
    return current.evolve(status=COMPLETED, progress=100, outputs=outputs)


def store_again_at(current: Task, next_attempt_at: float) -> Task | None:
    """Storing failed in a way that may pass (storage or the provider's file server down)."""
    if current.submission != STORING:
        return None
    return current.evolve(next_attempt_at=next_attempt_at, store_tries=current.store_tries + 1)


def storing_failed(current: Task, error: TaskError) -> Task | None:
    """A file that will never be kept (too large, damaged, refused by its source)."""
    return current.failed(error) if current.submission == STORING else None


def deadline_error(task: Task) -> TaskError:
    """What a task past its deadline fails with: ``timeout``, or, when its result was made
    but its files are not all stored, a storage code (paid images: the code of a paid result
    not kept, naming OpenAI's request)."""
    if task.submission != STORING:
        return task_error("timeout")
    if IMAGES in task.object_keys:
        return task_error("result_not_kept", provider_request_id=task.provider_request_id)
    return task_error("result_storage_failed")


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


# Waiting for a message (to be sent, or to have its files stored): what the nudge timer watches.
NUDGEABLE = (NOT_SUBMITTED, STORING)


def nudge(current: Task, now: float) -> Task | None:
    """A task not yet sent, or not yet stored, whose message is overdue: due again now."""
    return current.evolve(next_attempt_at=now) if current.submission in NUDGEABLE else None


def provider_lost(current: Task) -> Task | None:
    """The provider no longer knows a task it accepted."""
    return current.failed(task_error("provider_task_lost")) if current.submission == SUBMITTED else None


def withdraw(current: Task, seen: Task) -> Task | None:
    """End a task whose request was answered with an error (its create's outcome was
    unknown then), before any worker claims it: the client was told it failed."""
    if current.submission != NOT_SUBMITTED or not same_attempt(current, seen):
        return None
    return current.failed(task_error("request_not_accepted"))


def settle_from_read(current: Task, snapshot: TripoSnapshot, *, now: float,
                     object_keys: dict | None = None) -> Task | None:
    """What a provider read says about a submitted task; None when nothing changed.
    Progress never goes backwards while the task runs. With ``object_keys`` (object
    storage configured), a completed read moves the task to storing its files under them."""
    if current.submission != SUBMITTED:
        return None
    if snapshot.status == COMPLETED and object_keys is not None:
        made = current.evolve(credits_consumed=snapshot.credits_consumed)
        return _storing(made, outputs=snapshot.outputs, object_keys=object_keys, now=now, next_attempt_at=now)
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


# Reconciliation's timers (``workers.reconcile``): each is the moment a rule's clock
# started for a task; reconciliation knows how long each rule waits and looks only at
# tasks whose clock has run that long. A task has the timers of its state alone: one
# waiting for capacity has none and costs nothing until it is dispatched; a terminal one
# has none.
DEADLINE = "deadline"  # not sent, running, or storing its files: fails past its deadline
NUDGE = "nudge"  # not sent, or not stored: its message may be lost
CLAIM = "claim"  # claimed: its worker may have died
TIMERS = (DEADLINE, NUDGE, CLAIM)


def timer_origins(task: Task) -> dict[str, float]:
    if task.is_terminal:
        return {}
    if task.submission in NUDGEABLE:
        return {DEADLINE: deadline_origin(task), NUDGE: task.next_attempt_at or task.created_at}
    if task.submission == SUBMITTED:
        return {DEADLINE: deadline_origin(task)}
    if task.submission == CLAIMED:
        return {CLAIM: task.claimed_at or task.updated_at}
    return {}
