"""Reconciliation: tasks whose messages were lost move on, a claim whose worker died
mid-call ends as outcome unknown, and the deadline never cuts a call in flight."""

from __future__ import annotations

import threading
import time

import redis

from bff.tasks.queue import SUBMIT_QUEUE
from bff.tasks.store import task_key
from tests.conftest import wait_until
from tests.helpers import new_text_task, queued, reconcile_open_tasks, store_for, submit
from workers.reconcile import CLAIM_TIMEOUT_SECONDS, NUDGE_AFTER_SECONDS, UNSENT_CLAIM_SECONDS
from workers.scheduler import PollScheduler


def submit_messages(redis_client) -> int:
    return queued(redis_client, SUBMIT_QUEUE)


def claim(redis_client, task, claimed_at, sending_at=None):
    return store_for(redis_client).update(
        task.id, lambda t: t.evolve(submission="claimed", claimed_at=claimed_at, sending_at=sending_at))


def test_a_waiting_task_whose_message_was_lost_is_nudged_once(redis_client, worker_runtime):
    task = new_text_task(redis_client, created_at=time.time() - NUDGE_AFTER_SECONDS - 1)

    reconcile_open_tasks()
    reconcile_open_tasks()

    assert submit_messages(redis_client) == 1
    assert store_for(redis_client).get(task.id).next_attempt_at > task.created_at


def test_a_task_waiting_for_its_backoff_is_left_alone(redis_client, worker_runtime):
    task = new_text_task(redis_client, created_at=time.time() - NUDGE_AFTER_SECONDS - 1)
    store_for(redis_client).update(task.id, lambda t: t.evolve(next_attempt_at=time.time() + 30))

    reconcile_open_tasks()

    assert submit_messages(redis_client) == 0


def test_a_claim_older_than_any_provider_call_fails_as_outcome_unknown(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client)
    long_ago = time.time() - CLAIM_TIMEOUT_SECONDS["tripo"] - 1
    claim(redis_client, task, long_ago, sending_at=long_ago)

    reconcile_open_tasks()
    submit(task.id)

    failed = store_for(redis_client).get(task.id)
    assert failed.error.code == "provider_outcome_unknown" and tripo.create_bodies() == []


def test_a_claim_left_before_the_call_was_sent_is_released_and_the_task_sent(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client)
    claim(redis_client, task, time.time() - UNSENT_CLAIM_SECONDS - 1)

    reconcile_open_tasks()
    assert submit_messages(redis_client) == 1
    submit(task.id)

    sent = store_for(redis_client).get(task.id)
    assert sent.submission == "submitted" and len(tripo.create_bodies()) == 1


def test_a_young_claim_is_left_alone(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client)
    claim(redis_client, task, time.time() - 1)

    reconcile_open_tasks()

    assert store_for(redis_client).get(task.id).submission == "claimed" and submit_messages(redis_client) == 0


def test_the_deadline_does_not_cut_a_provider_call_in_flight(redis_client, worker_runtime):
    deadline = worker_runtime.settings.bff_task_deadline_seconds
    task = new_text_task(redis_client, created_at=time.time() - deadline - 1)
    claim(redis_client, task, time.time() - 1, sending_at=time.time() - 1)

    reconcile_open_tasks()

    assert store_for(redis_client).get(task.id).status == "pending"


def test_a_task_past_its_deadline_is_not_sent(redis_client, worker_runtime, tripo):
    deadline = worker_runtime.settings.bff_task_deadline_seconds
    task = new_text_task(redis_client, created_at=time.time() - deadline - 1)

    submit(task.id)

    assert store_for(redis_client).get(task.id).error.code == "timeout" and tripo.create_bodies() == []


def test_index_entries_without_a_record_are_dropped(redis_client, worker_runtime):
    task = new_text_task(redis_client)
    redis_client.delete(task_key(task.id))

    reconcile_open_tasks()

    assert store_for(redis_client).open_task_ids() == []


def test_a_record_written_by_a_newer_version_is_still_read(redis_client, worker_runtime):
    import json

    task = new_text_task(redis_client)
    raw = json.loads(redis_client.get(task_key(task.id)))
    redis_client.set(task_key(task.id), json.dumps({**raw, "field_from_the_future": 1}))

    assert store_for(redis_client).get(task.id).id == task.id


def test_racing_workers_create_one_provider_task(redis_client, worker_runtime, tripo):
    task = new_text_task(redis_client)
    start = threading.Barrier(8)

    def race():
        start.wait()
        submit(task.id)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tripo.create_bodies()) == 1
    assert store_for(redis_client).get(task.id).provider_task_id in tripo.tasks


class FlakyRedis:
    """A Redis client whose first SET fails the way a failover does."""

    def __init__(self, real):
        self.real, self.failed = real, False

    def set(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica.")
        return self.real.set(*args, **kwargs)


def test_the_scheduler_thread_survives_any_error(redis_client):
    polls = []
    scheduler = PollScheduler(FlakyRedis(redis_client), 0.05, lambda: polls.append(1))
    scheduler.after_worker_boot(None, None)
    try:
        wait_until(lambda: len(polls) >= 2)
    finally:
        scheduler.before_worker_shutdown(None, None)


def test_a_stalled_worker_cannot_send_after_its_claim_was_given_away(redis_client, worker_runtime, tripo):
    import pytest

    from workers.senders import SENDERS, ClaimLost

    task = new_text_task(redis_client)
    seen_by_stalled_worker = claim(redis_client, task, time.time() - UNSENT_CLAIM_SECONDS - 1)
    reconcile_open_tasks()  # releases the claim: nothing had been sent
    submit(task.id)  # another worker sends the task
    assert len(tripo.create_bodies()) == 1

    with pytest.raises(ClaimLost):
        SENDERS["tripo"](worker_runtime, seen_by_stalled_worker)  # the stalled worker wakes up

    assert len(tripo.create_bodies()) == 1
    assert store_for(redis_client).get(task.id).provider_task_id in tripo.tasks
