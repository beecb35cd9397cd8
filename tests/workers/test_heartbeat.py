"""A dead worker's claims stop holding provider capacity once its heartbeat is gone,
without an ambiguous call ever being sent again."""

from __future__ import annotations

import time

import pytest

from bff.tasks.queue import SUBMIT_QUEUE
from tests.conftest import wait_until
from tests.helpers import new_text_task, queued, reconcile_open_tasks, store_for
from workers.heartbeat import TTL_SECONDS, Heartbeat, heartbeat_key
from workers.reconcile import CLAIM_TIMEOUT_SECONDS, UNSENT_CLAIM_SECONDS

# Past the heartbeat's grace, well inside the timeouts that settle an anonymous claim.
CLAIM_AGE = TTL_SECONDS + 1
assert CLAIM_AGE < min(UNSENT_CLAIM_SECONDS, *CLAIM_TIMEOUT_SECONDS.values())


def claimed_by(redis_client, worker_id: str, *, sent: bool):
    task = new_text_task(redis_client)
    claimed_at = time.time() - CLAIM_AGE
    return store_for(redis_client).update(task.id, lambda t: t.evolve(
        submission="claimed", claimed_at=claimed_at, claimed_by=worker_id, sending_at=claimed_at if sent else None))


@pytest.fixture
def beating(redis_client):
    """A worker process's heartbeat, running as it does in a worker."""
    heartbeat = Heartbeat(redis_client)
    heartbeat.after_worker_boot(None, None)
    yield heartbeat
    heartbeat.after_worker_shutdown(None, None)


def test_a_worker_beats_while_it_runs_and_claims_with_its_id(redis_client, beating):
    assert beating.worker_id is not None and redis_client.exists(heartbeat_key(beating.worker_id))
    assert 0 < redis_client.ttl(heartbeat_key(beating.worker_id)) <= TTL_SECONDS


def test_a_dead_workers_call_fails_as_outcome_unknown_and_frees_its_slot_at_once(redis_client, worker_runtime,
                                                                                  tripo):
    task = claimed_by(redis_client, "dead-worker", sent=True)
    store = store_for(redis_client)
    bucket = worker_runtime.settings.bff_tripo_concurrency
    assert store.free_capacity(_generation_bucket(worker_runtime)) == bucket - 1

    reconcile_open_tasks()

    failed = store.get(task.id)
    assert failed.status == "failed" and failed.error.code == "provider_outcome_unknown"
    assert store.free_capacity(_generation_bucket(worker_runtime)) == bucket
    assert tripo.create_bodies() == []  # never sent again


def test_a_dead_workers_unsent_claim_is_released_and_sent_again(redis_client, worker_runtime, tripo):
    task = claimed_by(redis_client, "dead-worker", sent=False)

    reconcile_open_tasks()

    released = store_for(redis_client).get(task.id)
    assert released.submission == "not_submitted" and released.claimed_by is None
    assert queued(redis_client, SUBMIT_QUEUE) == 1  # and sent again


def test_a_live_workers_claim_of_the_same_age_is_left_alone(redis_client, worker_runtime, beating):
    sent = claimed_by(redis_client, beating.worker_id, sent=True)
    unsent = claimed_by(redis_client, beating.worker_id, sent=False)

    reconcile_open_tasks()

    assert store_for(redis_client).get(sent.id).submission == "claimed"
    assert store_for(redis_client).get(unsent.id).submission == "claimed"


def test_a_process_that_is_not_beating_claims_anonymously(redis_client):
    heartbeat = Heartbeat(redis_client)
    assert heartbeat.worker_id is None
    heartbeat.after_worker_boot(None, None)
    assert heartbeat.worker_id is not None
    heartbeat.after_worker_shutdown(None, None)
    assert heartbeat.worker_id is None


def _generation_bucket(worker_runtime):
    from bff.tasks.capacity import bucket_for

    return bucket_for("tripo", "text_to_model", worker_runtime.settings)


def test_after_an_outage_the_beat_is_back_as_soon_as_redis_is(redis_client, monkeypatch):
    """Beats that failed are retried at once, not a whole interval later: a worker cut off
    from Redis for longer than the TTL is seen alive again before reconciliation's next
    cycle can take it for dead."""
    import redis

    from tests.conftest import redis_port
    from tests.redis_proxy import LossyRedisProxy
    from workers import heartbeat as heartbeat_module

    monkeypatch.setattr(heartbeat_module, "INTERVAL_SECONDS", 3600.0)  # only a retry can beat again in time
    proxy = LossyRedisProxy(redis_port())
    beating = Heartbeat(redis.Redis.from_url(proxy.url, socket_timeout=0.5, socket_connect_timeout=0.5))
    try:
        proxy.refuse()
        beating.after_worker_boot(None, None)  # its first beat fails: Redis is out of reach
        assert not redis_client.exists(heartbeat_key(beating._id))

        proxy.refuse(False)

        wait_until(lambda: redis_client.exists(heartbeat_key(beating._id)), timeout=10)
    finally:
        beating.after_worker_shutdown(None, None)
        proxy.close()


def test_a_worker_beats_through_its_drain_and_is_gone_once_it_has_stopped(redis_client, monkeypatch):
    """Dramatiq emits before_worker_shutdown before the worker threads drain: the calls and
    storing attempts finishing then still belong to a live worker."""
    from workers import heartbeat as heartbeat_module

    monkeypatch.setattr(heartbeat_module, "INTERVAL_SECONDS", 0.05)
    heartbeat = Heartbeat(redis_client)
    heartbeat.after_worker_boot(None, None)
    key = heartbeat_key(heartbeat.worker_id)

    heartbeat.before_worker_shutdown(None, None)  # the drain starts
    redis_client.delete(key)
    wait_until(lambda: redis_client.exists(key))  # still beating
    assert heartbeat.worker_id is not None

    heartbeat.after_worker_shutdown(None, None)  # drained
    assert not redis_client.exists(key)
