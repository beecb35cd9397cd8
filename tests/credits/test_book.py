"""The credit book with the task store, on the real Redis: a reservation is made by the
script that records the task (all or nothing), released exactly once by the transaction
that ends it, on the UTC day it was made; the ledger; grants; the metrics."""

from __future__ import annotations

import json
import time

import fakeredis
import pytest

from bff.credits.book import CREDITS_EXHAUSTED, SERVICE_BUDGET_EXHAUSTED, UNUSED_RESERVATION
from bff.credits.credits import TASK_RECORD_LOST
from bff.metrics import Metrics
from bff.tasks.error_codes import task_error
from bff.tasks.record import COMPLETED
from bff.tasks.store import CreateRefused, TaskVoided, task_key
from tests.credits.building import TEXTURED, USER, accept, credits_for, store_with, text_task
from tests.credits.clock import FakeClock
from tests.scrapes import labels, of, parse

NOON = "2026-11-24T12:00:00"


@pytest.fixture
def clock():
    return FakeClock(NOON)


@pytest.fixture
def credits(redis_client, clock):
    return credits_for(redis_client, clock=clock, bff_user_daily_credits=100)


@pytest.fixture
def store(redis_client, credits):
    return store_with(redis_client, credits)


def user_counters(credits, user: str = USER, allowance: int | None = 100) -> tuple:
    summary = credits.book.summary(user, allowance=allowance)
    return summary["charged"], summary["reserved"], summary["remaining"]


def service_counters(credits) -> tuple:
    totals = credits.book.service_totals(1)[0]
    return totals["reserved"], totals["charged"], totals["refunded"]


def ledger(credits, user: str = USER) -> list[tuple]:
    return [(entry["kind"], entry["credits"], entry["reason"])
            for entry in credits.book.user_history(user, 1)[0]["entries"]]


def finish(store, task, **changes):
    """End ``task`` as a worker does (sent, then completed or failed): one store transaction."""
    return store.update(task.id, lambda current: current.evolve(sending_at=time.time(), **changes))


def completed(store, task, credits_consumed=None):
    return finish(store, task, status=COMPLETED, progress=100, credits_consumed=credits_consumed)


# -- reserving -------------------------------------------------------------------------

def test_reservations_fill_the_allowance_and_the_next_one_is_refused_with_nothing_written(redis_client, credits,
                                                                                         store):
    for _ in range(5):
        accept(store, credits, text_task())
    refused = text_task()

    with pytest.raises(CreateRefused) as raised:
        accept(store, credits, refused)

    assert raised.value.reason == CREDITS_EXHAUSTED
    assert store.get(refused.id) is None and refused.id not in store.open_task_ids()
    assert user_counters(credits) == (0, 100, 0)
    assert len(ledger(credits)) == 5
    assert accept(store, credits, text_task("bob")).reservation["user"] == "bob"  # allowances are per user


def test_exactly_the_rest_of_an_allowance_still_fits(credits, store):
    for _ in range(4):
        accept(store, credits, text_task())

    accept(store, credits, text_task(texture=False))  # 10
    accept(store, credits, text_task(texture=False))  # 10: exactly 100

    assert user_counters(credits) == (0, 100, 0)


def test_the_service_budget_refuses_every_user_once_spent(redis_client, clock):
    credits = credits_for(redis_client, clock=clock, bff_service_daily_credits=50)
    store = store_with(redis_client, credits)
    completed(store, accept(store, credits, text_task("alice")))
    accept(store, credits, text_task("bob"))

    with pytest.raises(CreateRefused) as raised:
        accept(store, credits, text_task("carol"))

    assert raised.value.reason == SERVICE_BUDGET_EXHAUSTED
    assert service_counters(credits) == (TEXTURED, TEXTURED, 0)
    assert user_counters(credits, "carol", allowance=None) == (0, 0, None)
    accept(store, credits, text_task("carol", texture=False))  # the last 10 still fit


def test_the_record_carries_its_reservation(credits, store):
    task = accept(store, credits, text_task())

    assert store.get(task.id).reservation == {"user": USER, "day": "2026-11-24", "price": TEXTURED,
                                              "service": "tripo"}


def test_running_the_same_create_again_reserves_nothing_more(credits, store):
    task, admission = credits.reserve(text_task(), None)
    store.create(task, admission=admission)

    store.create(task, admission=admission)  # redis-py re-sending a create whose reply was lost

    assert user_counters(credits) == (0, TEXTURED, 100 - TEXTURED)
    assert ledger(credits) == [("reserve", TEXTURED, "text_to_model")]


def test_a_void_task_reserves_nothing(credits, store):
    task, admission = credits.reserve(text_task(), None)
    assert not store.resolve_create(task)  # its create's outcome was unknown: declared void

    with pytest.raises(TaskVoided):
        store.create(task, admission=admission)

    assert user_counters(credits) == (0, 0, 100) and ledger(credits) == []


def test_without_any_credit_setting_nothing_is_reserved_or_counted(redis_client):
    credits = credits_for(redis_client)
    store = store_with(redis_client, credits)

    task = accept(store, credits, text_task())
    completed(store, task)

    assert task.reservation is None and store.get(task.id).status == COMPLETED
    assert redis_client.keys("bff:credits:*") == []


# -- settling and refunding ---------------------------------------------------------------

@pytest.mark.parametrize("consumed, charged", [(12, 12), (12.2, 13), (35, 35), (None, TEXTURED)])
def test_a_completed_task_is_charged_what_the_provider_reports_and_the_rest_returns(credits, store, consumed,
                                                                                    charged):
    completed(store, accept(store, credits, text_task()), credits_consumed=consumed)

    assert user_counters(credits) == (charged, 0, max(0, 100 - charged))
    unused = max(0, TEXTURED - charged)
    assert service_counters(credits) == (0, charged, unused)
    assert ledger(credits)[1:] == [("charge", charged, "completed")] + (
        [("refund", unused, UNUSED_RESERVATION)] if unused else [])


# (error code, whether the provider call had left, credits consumed) -> (user charged,
# service charged, service refunded), for a reservation of 20.
REFUND_PATHS = [
    ("content_policy", True, None, (0, 0, 20)),
    ("invalid_request", True, None, (0, 0, 20)),
    ("provider_failed", True, None, (0, 0, 20)),
    ("provider_failed", True, 0, (0, 0, 20)),
    ("provider_cancelled", True, None, (0, 0, 20)),
    ("provider_expired", True, None, (0, 0, 20)),
    ("provider_unavailable", True, None, (0, 0, 20)),
    ("provider_insufficient_credit", True, None, (0, 0, 20)),
    ("timeout", False, None, (0, 0, 20)),
    ("request_not_accepted", False, None, (0, 0, 20)),
    ("internal_error", False, None, (0, 0, 20)),
    ("provider_outcome_unknown", True, None, (0, 20, 0)),
    ("timeout", True, None, (0, 20, 0)),
    ("provider_task_lost", True, None, (0, 20, 0)),
    ("result_not_kept", True, None, (20, 20, 0)),
    ("provider_failed", True, 5, (5, 5, 15)),
]


@pytest.mark.parametrize("code, sent, consumed, expected", REFUND_PATHS)
def test_each_way_a_task_fails_releases_its_reservation_as_the_table_says(credits, store, code, sent, consumed,
                                                                          expected):
    task = accept(store, credits, text_task())

    store.update(task.id, lambda current: current.failed(task_error(code), credits_consumed=consumed,
                                                         sending_at=time.time() if sent else None))

    user_charged, service_charged, service_refunded = expected
    assert user_counters(credits) == (user_charged, 0, 100 - user_charged)
    assert service_counters(credits) == (0, service_charged, service_refunded)
    assert ledger(credits)[1][2] == code


def test_a_release_runs_once_however_often_its_commands_are_run(redis_client, credits, store):
    task = completed(store, accept(store, credits, text_task()), credits_consumed=15)

    for _ in range(2):  # the terminal write of a message that ran twice, and reconciliation
        with redis_client.pipeline(transaction=True) as pipe:
            for command in credits.end_commands(task):
                pipe.execute_command(*command)
            pipe.execute()
    credits.release_lost([task.id])

    assert user_counters(credits) == (15, 0, 85)
    assert service_counters(credits) == (0, 15, 5)
    assert [kind for kind, _, _ in ledger(credits)] == ["reserve", "charge", "refund"]


def test_a_terminal_task_changes_no_credits_again(credits, store):
    task = completed(store, accept(store, credits, text_task()))

    assert store.update(task.id, lambda current: current.failed(task_error("timeout"))) is None

    assert user_counters(credits) == (TEXTURED, 0, 100 - TEXTURED)


def test_a_reservation_whose_record_is_lost_is_refunded_once_and_stays_in_the_service_budget(redis_client,
                                                                                              credits, store):
    task = accept(store, credits, text_task())
    redis_client.delete(task_key(task.id))  # expired, or evicted

    credits.release_lost([task.id])
    credits.release_lost([task.id])

    assert user_counters(credits) == (0, 0, 100)
    assert service_counters(credits) == (0, TEXTURED, 0)
    assert ledger(credits)[1:] == [("refund", TEXTURED, TASK_RECORD_LOST)]


# -- the UTC day --------------------------------------------------------------------------

def test_a_reservation_settles_on_its_own_day_and_the_next_day_starts_fresh(redis_client):
    clock = FakeClock("2026-11-24T23:59:59")
    credits = credits_for(redis_client, clock=clock, bff_user_daily_credits=30)
    store = store_with(redis_client, credits)
    late = accept(store, credits, text_task())
    with pytest.raises(CreateRefused):
        accept(store, credits, text_task())
    assert credits.seconds_until_reset() == 1

    clock.advance(2)  # 2026-11-25T00:00:01
    completed(store, late, credits_consumed=25)

    today = credits.book.summary(USER, allowance=30)
    assert (today["day"], today["charged"], today["reserved"], today["remaining"]) == ("2026-11-25", 0, 0, 30)
    assert today["resets_at"] == "2026-11-26T00:00:00Z"
    yesterday = credits.book.user_history(USER, 2)[1]
    assert (yesterday["day"], yesterday["charged"], yesterday["reserved"]) == ("2026-11-24", 25, 0)
    assert [day["charged"] for day in credits.book.service_totals(2)] == [0, 25]
    accept(store, credits, text_task())  # a new day's allowance


# -- ledger, grants, metrics ----------------------------------------------------------------

def test_the_ledger_records_every_movement_and_expires_after_ledger_days(redis_client, clock):
    credits = credits_for(redis_client, clock=clock, ledger_days=3, bff_user_daily_credits=100)
    store = store_with(redis_client, credits)
    first, second = accept(store, credits, text_task()), accept(store, credits, text_task())
    credits.book.grant(USER, 50, "support ticket 42")
    clock.advance(60)
    completed(store, first, credits_consumed=15)
    finish(store, second, status="failed", error=task_error("provider_failed"))

    entries = credits.book.user_history(USER, 1)[0]["entries"]

    noon, later = "2026-11-24T12:00:00Z", "2026-11-24T12:01:00Z"
    assert entries == [
        {"kind": "reserve", "user": USER, "task": first.id, "credits": 20, "reason": "text_to_model", "time": noon},
        {"kind": "reserve", "user": USER, "task": second.id, "credits": 20, "reason": "text_to_model", "time": noon},
        {"kind": "grant", "user": USER, "task": None, "credits": 50, "reason": "support ticket 42", "time": noon},
        {"kind": "charge", "user": USER, "task": first.id, "credits": 15, "reason": "completed", "time": later},
        {"kind": "refund", "user": USER, "task": first.id, "credits": 5, "reason": UNUSED_RESERVATION,
         "time": later},
        {"kind": "refund", "user": USER, "task": second.id, "credits": 20, "reason": "provider_failed",
         "time": later},
    ]
    kept = 12 * 3600 + 3 * 86400 - 60  # until 3 days after the day ends, seen a minute after noon
    for key in redis_client.keys("bff:credits:2026-11-24:*"):
        assert kept - 5 <= redis_client.ttl(key) <= kept, key
    with pytest.raises(ValueError):
        credits.book.user_history(USER, 5)  # further back than the ledger keeps


def test_a_grant_raises_today_s_allowance_only(credits, store, clock):
    for _ in range(5):
        accept(store, credits, text_task())

    credits.book.grant(USER, 20, "apology")

    accept(store, credits, text_task())
    summary = credits.book.summary(USER, allowance=100)
    assert (summary["allowance"], summary["granted"], summary["remaining"]) == (120, 20, 0)
    clock.advance(86400)
    assert credits.book.summary(USER, allowance=100)["allowance"] == 100


def test_credits_are_counted_in_the_metrics_when_they_move(redis_client, credits, store):
    completed(store, accept(store, credits, text_task()), credits_consumed=12)
    store.update(accept(store, credits, text_task()).id,
                 lambda current: current.failed(task_error("provider_outcome_unknown"), sending_at=time.time()))

    body, _ = Metrics(redis_client).render()

    assert of(parse(body), "bff_credits_total") == {
        labels(service="tripo", kind="reserved"): 40,
        labels(service="tripo", kind="charged"): 12 + 20,
        labels(service="tripo", kind="refunded"): 8,
    }


def test_the_scripts_run_on_the_sandbox_s_embedded_store(clock):
    """Sandbox mode keeps everything in fakeredis: the same scripts must work there."""
    embedded = fakeredis.FakeRedis()
    credits = credits_for(embedded, clock=clock, bff_user_daily_credits=30)
    store = store_with(embedded, credits)
    task = accept(store, credits, text_task())
    with pytest.raises(CreateRefused):
        accept(store, credits, text_task())

    completed(store, task, credits_consumed=15)

    assert user_counters(credits, allowance=30) == (15, 0, 15)
    assert json.loads(embedded.get(task_key(task.id)))["reservation"]["price"] == TEXTURED
