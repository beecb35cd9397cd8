"""The credit book against the real Redis: reservations with the caller's writes, all or
nothing; settling and refunding exactly once; the UTC day; the ledger; grants."""

from __future__ import annotations

import json

import fakeredis
import pytest
import redis

from bff.credits import (
    CREDITS_EXHAUSTED,
    PROVIDER_OUTCOME_UNKNOWN,
    SERVICE_BUDGET_EXHAUSTED,
    WRITE_CONFLICT,
    CreditBook,
    Reservation,
    charged_credits,
)
from tests.credits.clock import FakeClock, utc

NOON = "2026-11-24T12:00:00"


@pytest.fixture
def clock():
    return FakeClock(NOON)


@pytest.fixture
def book(redis_client, clock):
    return CreditBook(redis_client, ledger_days=90, clock=clock)


def _reserve(book: CreditBook, user: str, task_id: str, price: int, *, allowance: int | None = 100,
             service_budget: int | None = None, writes: list[list] | None = None):
    return book.reserve(user, task_id, price, allowance=allowance, service_budget=service_budget, writes=writes or [])


def _user_counters(book: CreditBook, user: str, allowance: int | None = 100) -> tuple:
    summary = book.summary(user, allowance=allowance)
    return summary["charged"], summary["reserved"], summary["remaining"]


def _service(book: CreditBook) -> tuple:
    totals = book.service_totals(1)[0]
    return totals["reserved"], totals["charged"], totals["refunded"]


def _terminal_transaction(redis_client, task_id: str, commands: list[list]) -> None:
    """What the task store does at a task's end: WATCH the record, then write its terminal
    state and the credit commands in one MULTI."""
    with redis_client.pipeline(transaction=True) as pipe:
        pipe.watch(f"test:task:{task_id}")
        pipe.multi()
        pipe.set(f"test:task:{task_id}", "terminal")
        for command in commands:
            pipe.execute_command(*command)
        pipe.execute()


# -- reserving -------------------------------------------------------------------------

def test_reservations_fill_the_allowance_and_the_next_one_is_refused_until_midnight(book):
    assert _reserve(book, "alice", "t1", 40).accepted
    assert _reserve(book, "alice", "t2", 40).accepted

    refused = _reserve(book, "alice", "t3", 30)

    assert (refused.accepted, refused.refusal) == (False, CREDITS_EXHAUSTED)
    assert refused.retry_after_seconds == 12 * 3600
    assert _user_counters(book, "alice") == (0, 80, 20)
    assert _reserve(book, "alice", "t4", 20).accepted  # exactly the rest still fits
    assert _reserve(book, "bob", "t5", 100).accepted  # allowances are per user


def test_no_allowance_means_unlimited(book):
    assert _reserve(book, "alice", "t1", 10**6, allowance=None).accepted
    assert book.summary("alice", allowance=None)["remaining"] is None


def test_the_service_budget_refuses_every_user_once_spent(book):
    assert _reserve(book, "alice", "t1", 20, service_budget=50).accepted
    assert book.settle("t1", 20)
    assert _reserve(book, "bob", "t2", 20, service_budget=50).accepted

    refused = _reserve(book, "carol", "t3", 20, service_budget=50)

    assert (refused.refusal, refused.retry_after_seconds) == (SERVICE_BUDGET_EXHAUSTED, 12 * 3600)
    assert _user_counters(book, "carol") == (0, 0, 100)
    assert _service(book) == (20, 20, 0)
    assert _reserve(book, "carol", "t4", 10, service_budget=50).accepted


# -- the caller's writes ------------------------------------------------------------------

WRITES = [
    ["SET", "test:task:t1", '{"id":"t1"}', "NX", "EX", 3600],
    ["ZADD", "test:open", 1700000000.5, "t1"],
    ["HSET", "test:upload:t1", "data", b"\x89PNG\x00", "content_type", "image/png"],
    ["EXPIRE", "test:upload:t1", 3600],
    ["SET", "test:idempotency", "answer", "EX", 86400],
]


def test_an_accepted_reservation_applies_the_writes(book, redis_client):
    assert _reserve(book, "alice", "t1", 20, writes=WRITES).accepted

    assert redis_client.get("test:task:t1") == b'{"id":"t1"}'
    assert 3590 < redis_client.ttl("test:task:t1") <= 3600
    assert redis_client.zscore("test:open", "t1") == 1700000000.5
    assert redis_client.hgetall("test:upload:t1") == {b"data": b"\x89PNG\x00", b"content_type": b"image/png"}
    assert 3590 < redis_client.ttl("test:upload:t1") <= 3600
    assert redis_client.get("test:idempotency") == b"answer"


def test_writes_may_carry_the_reservation_they_commit_with(book, redis_client):
    def record(reservation: Reservation) -> list[list]:
        return [["SET", "test:task:t1", json.dumps({"reservation": reservation.as_dict()})]]

    result = _reserve(book, "alice", "t1", 20, writes=record)

    stored = json.loads(redis_client.get("test:task:t1"))["reservation"]
    assert Reservation.from_dict(stored) == result.reservation
    assert result.reservation.day == "2026-11-24"


def test_a_refused_reservation_writes_nothing(book, redis_client):
    assert not _reserve(book, "alice", "t1", 200, writes=WRITES).accepted
    assert not _reserve(book, "alice", "t1", 20, service_budget=10, writes=WRITES).accepted

    assert redis_client.keys("test:*") == []
    assert book.reservation("t1") is None
    assert book.user_history("alice", 1)[0]["entries"] == []


def test_a_taken_set_nx_key_refuses_the_whole_reservation(book, redis_client):
    redis_client.set("test:task:t1", "someone else's")

    result = _reserve(book, "alice", "t1", 20, writes=WRITES)

    assert (result.accepted, result.refusal) == (False, WRITE_CONFLICT)
    assert redis_client.get("test:task:t1") == b"someone else's"
    assert redis_client.exists("test:open", "test:upload:t1", "test:idempotency") == 0
    assert _user_counters(book, "alice") == (0, 0, 100)


def test_a_command_outside_the_allow_list_is_an_error_and_changes_nothing(book, redis_client):
    redis_client.set("test:keep", "1")

    with pytest.raises(redis.ResponseError, match="not allowed"):
        _reserve(book, "alice", "t1", 20, writes=[["ZADD", "test:open", 1, "t1"], ["DEL", "test:keep"]])

    assert redis_client.exists("test:keep") == 1
    assert redis_client.exists("test:open") == 0
    assert book.reservation("t1") is None


def test_a_second_reserve_for_the_same_task_returns_the_first_and_reserves_nothing(book, redis_client):
    first = _reserve(book, "alice", "t1", 20, writes=[["SET", "test:task:t1", "first"]])

    again = _reserve(book, "alice", "t1", 20, writes=[["SET", "test:task:t1", "second"]])

    assert again.accepted and again.already_reserved
    assert again.reservation == first.reservation
    assert redis_client.get("test:task:t1") == b"first"
    assert _user_counters(book, "alice") == (0, 20, 80)
    assert _service(book) == (20, 0, 0)


# -- settling and refunding ---------------------------------------------------------------

@pytest.mark.parametrize("charged", [12, 20, 35])
def test_settling_records_what_the_provider_charged(book, charged):
    _reserve(book, "alice", "t1", 20)

    assert book.settle("t1", charged, "completed")

    assert _user_counters(book, "alice") == (charged, 0, 100 - charged)
    assert _service(book) == (0, charged, 0)
    last = book.user_history("alice", 1)[0]["entries"][-1]
    assert (last["kind"], last["credits"], last["reason"]) == ("charge", charged, "completed")


def test_a_failure_without_a_provider_charge_refunds_in_full(book):
    _reserve(book, "alice", "t1", 30)

    assert book.refund("t1", "failed")

    assert _user_counters(book, "alice") == (0, 0, 100)
    assert _service(book) == (0, 0, 30)


def test_an_unknown_provider_outcome_refunds_the_user_but_stays_in_the_service_budget(book):
    _reserve(book, "alice", "t1", 30, service_budget=50)

    assert book.refund("t1", PROVIDER_OUTCOME_UNKNOWN, keep_in_service_budget=True)

    assert _user_counters(book, "alice") == (0, 0, 100)
    assert _service(book) == (0, 30, 0)
    assert _reserve(book, "bob", "t2", 30, service_budget=50).refusal == SERVICE_BUDGET_EXHAUSTED
    last = book.user_history("alice", 1)[0]["entries"][-1]
    assert (last["kind"], last["credits"], last["reason"]) == ("refund", 30, PROVIDER_OUTCOME_UNKNOWN)


def test_settle_commands_take_effect_with_the_terminal_write_and_only_once(book, redis_client):
    reservation = _reserve(book, "alice", "t1", 20).reservation
    commands = book.settle_commands(Reservation.from_dict(reservation.as_dict()), 25, "completed")

    _terminal_transaction(redis_client, "t1", commands)
    _terminal_transaction(redis_client, "t1", commands)  # a message that ran twice

    assert redis_client.get("test:task:t1") == b"terminal"
    assert not book.settle("t1", 25)
    assert not book.refund("t1", "failed")
    assert _user_counters(book, "alice") == (25, 0, 75)
    assert _service(book) == (0, 25, 0)
    assert [entry["kind"] for entry in book.user_history("alice", 1)[0]["entries"]] == ["reserve", "charge"]


def test_refund_commands_count_once_whichever_way_they_run(book, redis_client):
    reservation = _reserve(book, "alice", "t1", 20).reservation

    _terminal_transaction(redis_client, "t1", book.refund_commands(reservation, "failed"))

    assert not book.refund("t1", "failed")
    assert not book.settle("t1", 20)
    assert _user_counters(book, "alice") == (0, 0, 100)
    assert _service(book) == (0, 0, 20)


def test_a_refund_that_comes_first_wins_over_a_later_settle(book, redis_client):
    reservation = _reserve(book, "alice", "t1", 20).reservation
    assert book.refund("t1", "reconciled")

    _terminal_transaction(redis_client, "t1", book.settle_commands(reservation, 20, "completed"))

    assert _user_counters(book, "alice") == (0, 0, 100)
    assert _service(book) == (0, 0, 20)


def test_a_task_without_a_reservation_has_nothing_to_settle(book):
    assert not book.settle("never-reserved", 20)
    assert not book.refund("never-reserved", "failed")


def test_the_charge_is_what_the_provider_reports_else_the_price():
    reservation = Reservation(task_id="t1", user="alice", day="2026-11-24", price=30)
    assert charged_credits(reservation, None) == 30
    assert charged_credits(reservation, 20) == 20
    assert charged_credits(reservation, "20.0") == 20
    assert charged_credits(reservation, 12.5) == 13  # never less than Tripo took


# -- the UTC day --------------------------------------------------------------------------

def test_a_reservation_settles_on_its_own_day_and_the_next_day_starts_fresh(redis_client):
    clock = FakeClock("2026-11-24T23:59:59")
    book = CreditBook(redis_client, clock=clock)
    assert _reserve(book, "alice", "late", 80).accepted
    refused = _reserve(book, "alice", "too-much", 30)
    assert (refused.refusal, refused.retry_after_seconds) == (CREDITS_EXHAUSTED, 1)

    clock.advance(2)  # 2026-11-25T00:00:01
    assert book.settle("late", 70)

    today = book.summary("alice", allowance=100)
    assert (today["day"], today["charged"], today["reserved"], today["remaining"]) == ("2026-11-25", 0, 0, 100)
    assert today["resets_at"] == "2026-11-26T00:00:00Z"
    yesterday = book.user_history("alice", 2)[1]
    assert (yesterday["day"], yesterday["charged"], yesterday["reserved"]) == ("2026-11-24", 70, 0)
    assert [day["charged"] for day in book.service_totals(2)] == [0, 70]
    assert _reserve(book, "alice", "fresh", 100).accepted


# -- ledger and grants ----------------------------------------------------------------------

def test_the_ledger_records_every_movement_and_expires_after_ledger_days(redis_client):
    clock = FakeClock(NOON)
    book = CreditBook(redis_client, ledger_days=3, clock=clock)
    _reserve(book, "alice", "t1", 20)
    kept = 12 * 3600 + 3 * 86400  # until 3 days after the day ends
    for key in ("bff:credits:task:t1", "bff:credits:2026-11-24:ledger:alice"):
        assert kept - 5 <= redis_client.ttl(key) <= kept
    _reserve(book, "alice", "t2", 30)
    book.grant("alice", 50, "support ticket 42")
    clock.advance(60)
    book.settle("t1", 15, "completed")
    book.refund("t2", "failed")

    entries = book.user_history("alice", 1)[0]["entries"]

    assert entries == [
        {"kind": "reserve", "user": "alice", "task": "t1", "credits": 20, "reason": "reserved",
         "time": "2026-11-24T12:00:00Z"},
        {"kind": "reserve", "user": "alice", "task": "t2", "credits": 30, "reason": "reserved",
         "time": "2026-11-24T12:00:00Z"},
        {"kind": "grant", "user": "alice", "task": None, "credits": 50, "reason": "support ticket 42",
         "time": "2026-11-24T12:00:00Z"},
        {"kind": "charge", "user": "alice", "task": "t1", "credits": 15, "reason": "completed",
         "time": "2026-11-24T12:01:00Z"},
        {"kind": "refund", "user": "alice", "task": "t2", "credits": 30, "reason": "failed",
         "time": "2026-11-24T12:01:00Z"},
    ]
    expected = kept - 60  # the same moment, a minute later
    for key in ("bff:credits:2026-11-24:ledger:alice", "bff:credits:2026-11-24:user:alice",
                "bff:credits:2026-11-24:service"):
        assert expected - 5 <= redis_client.ttl(key) <= expected
    assert json.loads(redis_client.lindex("bff:credits:2026-11-24:ledger:alice", 0))["task"] == "t1"
    with pytest.raises(ValueError):
        book.user_history("alice", 5)  # further back than the ledger keeps


def test_a_grant_raises_today_s_allowance(book):
    assert _reserve(book, "alice", "t1", 100).accepted
    assert _reserve(book, "alice", "t2", 30).refusal == CREDITS_EXHAUSTED

    book.grant("alice", 50, "apology")

    assert _reserve(book, "alice", "t2", 30).accepted
    summary = book.summary("alice", allowance=100)
    assert (summary["allowance"], summary["granted"], summary["remaining"]) == (150, 50, 20)


def test_a_grant_lasts_only_for_its_day(book, clock):
    book.grant("alice", 50, "apology")
    clock.advance(86400)
    assert book.summary("alice", allowance=100)["allowance"] == 100


def test_service_totals_show_each_day(book, clock):
    _reserve(book, "alice", "t1", 20)
    book.settle("t1", 20)
    clock.advance(86400)
    _reserve(book, "alice", "t2", 30)
    _reserve(book, "bob", "t3", 10)
    book.refund("t3", "failed")

    assert book.service_totals(3) == [
        {"day": "2026-11-25", "reserved": 30, "charged": 0, "refunded": 10},
        {"day": "2026-11-24", "reserved": 0, "charged": 20, "refunded": 0},
        {"day": "2026-11-23", "reserved": 0, "charged": 0, "refunded": 0},
    ]


def test_the_scripts_run_on_the_sandbox_s_embedded_store(clock):
    """Sandbox mode keeps everything in fakeredis: the same scripts must work there."""
    embedded = fakeredis.FakeRedis()
    book = CreditBook(embedded, clock=clock)
    reservation = _reserve(book, "alice", "t1", 20, writes=[["SET", "test:task:t1", "record", "NX"]]).reservation
    _terminal_transaction(embedded, "t1", book.settle_commands(reservation, 15, "completed"))

    assert not book.settle("t1", 15)
    assert _user_counters(book, "alice") == (15, 0, 85)
