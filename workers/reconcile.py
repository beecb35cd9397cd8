"""Reconciliation: every open task moves on, whatever happened to its messages.

The task record is the source of truth and Dramatiq messages only nudge it. Each poll
cycle looks at the open tasks that a rule may now apply to, found by their timers (sorted
sets kept with the records: ``bff.tasks.lifecycle.timer_origins``), and only at those: a
task waiting for capacity has no timer, and costs nothing until it is dispatched. The
rules:

- a claim whose worker died before the provider call left (no ``sending_at``) is
  released, and the task is sent again: nothing was sent, nothing is lost;
- a claim older than the longest possible provider call, with the call sent, means its
  worker died mid-call: the call may have been billed, so the task fails as
  ``provider_outcome_unknown`` (never re-sent);
- either is settled as soon as its worker's heartbeat is gone (``workers.heartbeat``),
  rather than after those timeouts, so a dead worker's slots free within seconds;
- a task past its deadline fails with ``timeout``, unless its provider call is still in
  flight (then the claim rule above settles it) or it waits for provider capacity
  (capacity always frees up, because tasks in flight are bounded by the deadline); a task
  still storing its files fails with a storage code instead (``lifecycle.deadline_error``);
- a task not yet sent, or not yet stored, whose message is overdue (lost with a killed
  worker, or never enqueued because Redis failed) is nudged again;
- an index entry whose record is gone is dropped, and the credits its task held are
  refunded (kept in the service's budget: its provider call may have been billed).

Then, for each capacity bucket, the oldest waiting tasks are sent as capacity allows.
Once an hour the timers of every open task are set again from its record, for records
written by a version before timers (a rolling deploy).
"""

from __future__ import annotations

import logging
import time

from bff.logs import task_context
from bff.providers import openai, tripo
from bff.tasks import lifecycle
from bff.tasks.capacity import all_buckets
from bff.tasks.error_codes import task_error
from bff.tasks.lifecycle import CLAIM, DEADLINE, NUDGE
from bff.tasks.record import CLAIMED, STORING, Service, Task, TaskError

from .heartbeat import TTL_SECONDS as HEARTBEAT_TTL_SECONDS
from .heartbeat import live_workers
from .runtime import WorkerRuntime
from .storing import PAID_IMAGES_SECONDS, discard_upload

log = logging.getLogger(__name__)

_CALL_MARGIN_SECONDS = 30
# The longest a provider call can hold a claim: its connect and read timeouts, plus margin.
CLAIM_TIMEOUT_SECONDS = {
    Service.TRIPO: tripo.CONNECT_TIMEOUT_SECONDS + tripo.READ_TIMEOUT_SECONDS + _CALL_MARGIN_SECONDS,
    # With object storage, the worker then tries for a while to store the paid images.
    Service.OPENAI: (openai.CONNECT_TIMEOUT_SECONDS + openai.READ_TIMEOUT_SECONDS + PAID_IMAGES_SECONDS
                     + _CALL_MARGIN_SECONDS),
}
# A task not yet sent, or not yet stored, whose message has not run this long after it was
# due is nudged again.
NUDGE_AFTER_SECONDS = 60
# Claiming and marking the call as sent take milliseconds; a claim this old with no call
# marked was left by a worker that died in between.
UNSENT_CLAIM_SECONDS = 30
TIMERS_INDEX_SECONDS = 3600
_BATCH = 200


def reconcile_open_tasks(runtime: WorkerRuntime) -> None:
    drop_gone(runtime, runtime.store.index_timers(TIMERS_INDEX_SECONDS))
    settle_due_tasks(runtime)
    dispatch_waiting_tasks(runtime)


def due_task_ids(runtime: WorkerRuntime, now: float) -> list[str]:
    """Open tasks that some rule may apply to now: each timer is due once its rule's
    shortest wait has passed."""
    waits = {
        DEADLINE: runtime.settings.bff_task_deadline_seconds,
        NUDGE: NUDGE_AFTER_SECONDS,
        # A claim is first worth a look once a dead claimant's heartbeat would have expired.
        CLAIM: min(HEARTBEAT_TTL_SECONDS, UNSENT_CLAIM_SECONDS, *CLAIM_TIMEOUT_SECONDS.values()),
    }
    due = (runtime.store.due_task_ids(timer, now - wait) for timer, wait in waits.items())
    return list(dict.fromkeys(task_id for ids in due for task_id in ids))


def settle_due_tasks(runtime: WorkerRuntime) -> None:
    store = runtime.store
    ids = due_task_ids(runtime, time.time())
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        tasks = store.get_many(batch)
        drop_gone(runtime, set(batch) - {task.id for task in tasks})
        claimants = {task.claimed_by for task in tasks if task.submission == CLAIMED and task.claimed_by}
        live = live_workers(runtime.services.redis, claimants)
        for task in tasks:
            try:
                _settle(runtime, task, time.time(), worker_gone=bool(task.claimed_by) and task.claimed_by not in live)
            except Exception:
                # One odd record must not stop the others from moving on.
                log.exception("could not reconcile a task", extra={"open_task": task.id})


def _settle(runtime: WorkerRuntime, task: Task, now: float, *, worker_gone: bool) -> None:
    if task.submission == CLAIMED:
        claim_age = now - (task.claimed_at or 0)
        # A claimant whose heartbeat stopped is as good as one whose call timed out.
        abandoned = worker_gone and claim_age > HEARTBEAT_TTL_SECONDS
        if task.sending_at is None and (abandoned or claim_age > UNSENT_CLAIM_SECONDS):
            _release_unsent_claim(runtime, task, now)
        elif task.sending_at is not None and (abandoned or claim_age > CLAIM_TIMEOUT_SECONDS[Service(task.service)]):
            _fail(runtime, task, task_error("provider_outcome_unknown", "the worker stopped during the provider call"))
        return
    nudge_from = lifecycle.timer_origins(task).get(NUDGE)
    if lifecycle.past_deadline(task, now, runtime.settings.bff_task_deadline_seconds):
        _fail(runtime, task, lifecycle.deadline_error(task))
    elif nudge_from is not None and now > nudge_from + NUDGE_AFTER_SECONDS:
        _nudge(runtime, task, now)


def _nudge(runtime: WorkerRuntime, task: Task, now: float) -> None:
    """Send the message of a task not yet sent, or not yet stored, again."""
    if not runtime.store.update(task.id, lambda current: lifecycle.nudge(current, now)):
        return
    if task.submission == STORING:
        runtime.queue.store_results(task.id, task.request_id)
    else:
        runtime.queue.submit(task.id, task.request_id)
    with task_context(task.id, task.request_id):
        log.warning("nudged a task whose message was lost")


def drop_gone(runtime: WorkerRuntime, task_ids: set[str]) -> None:
    """Tasks whose records are gone (expired, evicted, deleted by hand): their index entries
    go, and the credits they held are refunded."""
    runtime.store.forget(task_ids)
    runtime.services.credits.release_lost(task_ids)


def dispatch_waiting_tasks(runtime: WorkerRuntime) -> None:
    store = runtime.store
    for bucket in all_buckets(runtime.settings):
        oldest = store.oldest_waiting(bucket, store.free_capacity(bucket))
        tasks = store.get_many(oldest)
        drop_gone(runtime, set(oldest) - {task.id for task in tasks})
        for task in tasks:
            # A dispatched message that is lost is sent again once the mark expires.
            if store.mark_dispatched(task.id, NUDGE_AFTER_SECONDS):
                runtime.queue.submit(task.id, task.request_id)


def _release_unsent_claim(runtime: WorkerRuntime, task: Task, now: float) -> None:
    if runtime.store.update(task.id, lambda current: lifecycle.release_unsent_claim(current, task, now)):
        runtime.queue.submit(task.id, task.request_id)
        with task_context(task.id, task.request_id):
            log.warning("released the claim of a worker that stopped before sending; sending again")


def _fail(runtime: WorkerRuntime, task: Task, error: TaskError) -> None:
    failed = runtime.store.update(task.id, lambda current: lifecycle.fail(current, task, error))
    if failed:
        discard_upload(runtime, failed)
        with task_context(failed.id, failed.request_id):
            log.warning("task failed by reconciliation", extra={"error_code": error.code})
