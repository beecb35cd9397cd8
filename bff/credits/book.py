"""The credit book: daily allowances per user and a daily budget for the service, in Redis.

A task's price is *reserved* before any provider call, by the script that records the
task (``admission``: a check the task store runs before it writes anything, and the
writes that go with the task). When the task ends, the reservation is released exactly
once, by commands that run in the transaction that makes the task terminal: *settled* at
what the provider charged, or *refunded*. Everything counts against the UTC day the
reservation was made, however late it is released.

Keys (all under ``bff:credits:``; a day is ``YYYY-MM-DD`` in UTC):
- ``{day}:user:{user}``: hash ``reserved`` (in flight), ``charged``, ``granted`` (extra
  credits for that day), ``allowance`` (the user's allowance when they last reserved).
- ``{day}:service``: hash ``reserved``, ``charged``, ``refunded`` for the whole service.
- ``{day}:ledger:{user}``: list of JSON entries ``{kind, user, task, credits, reason, time}``
  (kind: reserve, charge, refund, grant).
- ``task:{task_id}``: hash ``user``, ``day``, ``price``, ``service``, ``state``
  (``reserved`` until released, then ``released``): the marker that makes releasing
  idempotent, and what a reservation whose task record is lost is released from.
A day's keys are kept until ``ledger_days`` days after the day ends.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from bff.metrics import CHARGED, REFUNDED, RESERVED, Metrics
from bff.tasks.store import Admission

PREFIX = "bff:credits:"
DAY_SECONDS = 86400

# The admission check's refusals (also the ``reason`` of the HTTP answer).
CREDITS_EXHAUSTED = "credits_exhausted"
SERVICE_BUDGET_EXHAUSTED = "service_budget_exhausted"

# The part of a settled reservation the provider did not charge, as a ledger reason.
UNUSED_RESERVATION = "unused_reservation"

# The body of the task store's admission check (``admit(args)``, see bff.tasks.store):
# args are the price, the user's day key, the allowance ('' for none), the service's
# day key and the budget ('' for none). Reserved credits count as spent: two requests
# can never both take the last ones.
ADMISSION_CHECK = f"""
local price = tonumber(args[1])
if args[3] ~= '' then
  local user = redis.call('HMGET', args[2], 'reserved', 'charged', 'granted')
  local used = (tonumber(user[1]) or 0) + (tonumber(user[2]) or 0)
  if used + price > tonumber(args[3]) + (tonumber(user[3]) or 0) then return '{CREDITS_EXHAUSTED}' end
end
if args[5] ~= '' then
  local service = redis.call('HMGET', args[4], 'reserved', 'charged')
  if (tonumber(service[1]) or 0) + (tonumber(service[2]) or 0) + price > tonumber(args[5]) then
    return '{SERVICE_BUDGET_EXHAUSTED}'
  end
end
"""

# Releases a reservation once: the marker moves from ``reserved`` to ``released`` in the
# script that moves the counters, so whoever runs it again changes nothing.
# KEYS: marker, user day, service day, ledger, then metric hashes. ARGV: price, user's
# charge, service's charge, service's refund, ttl, the number of ledger entries, the
# entries, then a field and an amount per metric hash.
_RELEASE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'reserved' then
  return 0
end
local price = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'released')
redis.call('HINCRBY', KEYS[2], 'reserved', -price)
redis.call('HINCRBY', KEYS[2], 'charged', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[3], 'reserved', -price)
redis.call('HINCRBY', KEYS[3], 'charged', tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[3], 'refunded', tonumber(ARGV[4]))
local entries = tonumber(ARGV[6])
for index = 1, entries do redis.call('RPUSH', KEYS[4], ARGV[6 + index]) end
for key = 2, 4 do redis.call('EXPIRE', KEYS[key], ARGV[5]) end
local position = 7 + entries
for key = 5, #KEYS do
  redis.call('HINCRBYFLOAT', KEYS[key], ARGV[position], ARGV[position + 1])
  position = position + 2
end
return 1
"""


@dataclass(frozen=True)
class Reservation:
    """Credits held for one task; its ``as_dict`` lives on the task record."""

    task_id: str
    user: str
    day: str
    price: int
    service: str

    def as_dict(self) -> dict:
        return {"user": self.user, "day": self.day, "price": self.price, "service": self.service}

    @classmethod
    def from_dict(cls, task_id: str, data: dict) -> Reservation:
        return cls(task_id=task_id, user=data["user"], day=data["day"], price=int(data["price"]),
                   service=data["service"])


def _user_key(day: str, user: str) -> str:
    return f"{PREFIX}{day}:user:{user}"


def _service_key(day: str) -> str:
    return f"{PREFIX}{day}:service"


def _ledger_key(day: str, user: str) -> str:
    return f"{PREFIX}{day}:ledger:{user}"


def _marker_key(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def day_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _day_start(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def seconds_until_reset(now: float) -> int:
    """Whole seconds until the next UTC midnight, at least 1 (a Retry-After value)."""
    return max(1, math.ceil(_day_start(day_of(now)) + DAY_SECONDS - now))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CreditBook:
    def __init__(self, redis_client: redis.Redis, *, ledger_days: int = 90, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time):
        if ledger_days < 1:
            raise ValueError("ledger_days must be at least 1")
        self._redis = redis_client
        self._ledger_days = ledger_days
        # Counts credits in the very scripts that move them (bff_credits_total).
        self._metrics = metrics
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    # -- reserving: with the task store's create script ----------------------------

    def new_reservation(self, user: str, task_id: str, price: int, service: str) -> Reservation:
        """A reservation of ``price`` credits made now (its UTC day is fixed here, once)."""
        if price < 0:
            raise ValueError("a price is at least 0 credits")
        return Reservation(task_id=task_id, user=user, day=day_of(self._clock()), price=price, service=service)

    def admission(self, reservation: Reservation, *, allowance: int | None, service_budget: int | None,
                  reason: str) -> Admission:
        """What the task store's create script checks (``ADMISSION_CHECK``) and writes to
        hold ``reservation``: refused when the user's charged and reserved credits plus
        the price would exceed ``allowance`` plus the day's grants, or the service's would
        exceed ``service_budget`` (None: no limit). ``reason`` goes on the ledger entry."""
        now = self._clock()
        day, user, price = reservation.day, reservation.user, reservation.price
        keys = (_marker_key(reservation.task_id), _user_key(day, user), _service_key(day), _ledger_key(day, user))
        ttl = self._ttl(day, now)
        writes: list[list] = [
            ["HSET", keys[0], "user", user, "day", day, "price", price, "service", reservation.service,
             "state", "reserved"],
            ["HINCRBY", keys[1], "reserved", price],
            ["HINCRBY", keys[2], "reserved", price],
            ["RPUSH", keys[3], self._entry("reserve", user, reservation.task_id, price, reason, now)],
        ]
        if allowance is not None:
            writes.append(["HSET", keys[1], "allowance", allowance])
        writes += [["EXPIRE", key, ttl] for key in keys]
        writes += self._counts(reservation.service, {RESERVED: price})
        check_args = [price, keys[1], _limit(allowance), keys[2], _limit(service_budget)]
        return Admission(check_args=check_args, writes=writes)

    def reservation(self, task_id: str) -> Reservation | None:
        """The task's reservation while it is still held (not yet settled or refunded)."""
        fields = {_text(key): _text(value) for key, value in self._redis.hgetall(_marker_key(task_id)).items()}
        if fields.get("state") != "reserved":
            return None
        return Reservation.from_dict(task_id, fields)

    # -- releasing: commands for the task store's terminal transaction ---------------

    def settle_commands(self, reservation: Reservation, charged: int, reason: str) -> list[list]:
        """Commands that release the reservation at ``charged`` credits (what the provider
        charged; the rest of the price returns, and a charge above it is recorded as
        charged). Run them in the transaction that writes the task's terminal state: they
        take effect when it commits, and at most once whoever else releases it."""
        if charged < 0:
            raise ValueError("charged credits are at least 0")
        unused = max(0, reservation.price - charged)
        entries = [("charge", charged, reason)] + ([("refund", unused, UNUSED_RESERVATION)] if unused else [])
        return self._release_commands(reservation, entries, user_charged=charged, service_charged=charged,
                                      service_refunded=unused)

    def refund_commands(self, reservation: Reservation, reason: str, *,
                        keep_in_service_budget: bool = False) -> list[list]:
        """Commands that give the whole reservation back to the user. With
        ``keep_in_service_budget`` (the provider may have run and billed the task) the
        credits stay spent in the service's budget."""
        kept = reservation.price if keep_in_service_budget else 0
        return self._release_commands(reservation, [("refund", reservation.price, reason)], user_charged=0,
                                      service_charged=kept, service_refunded=reservation.price - kept)

    def _release_commands(self, reservation: Reservation, entries: list[tuple[str, int, str]], *,
                          user_charged: int, service_charged: int, service_refunded: int) -> list[list]:
        now = self._clock()
        day, user = reservation.day, reservation.user
        counts = self._counts(reservation.service, {CHARGED: service_charged, REFUNDED: service_refunded})
        keys = [_marker_key(reservation.task_id), _user_key(day, user), _service_key(day), _ledger_key(day, user),
                *(count[1] for count in counts)]
        args = [reservation.price, user_charged, service_charged, service_refunded, self._ttl(day, now), len(entries),
                *(self._entry(kind, user, reservation.task_id, credits, why, now) for kind, credits, why in entries),
                *(part for count in counts for part in count[2:])]
        # EVAL, not EVALSHA: inside MULTI a NOSCRIPT would fail only this command while
        # the rest of the transaction commits.
        return [["EVAL", _RELEASE_SCRIPT, len(keys), *keys, *args]]

    def _counts(self, service: str, amounts: dict[str, int]) -> list[list]:
        if self._metrics is None:
            return []
        return [command for kind, amount in amounts.items() if amount
                for command in self._metrics.credits_commands(service, kind, amount)]

    # -- releasing on its own: what reconciliation finds left behind -----------------

    def refund(self, task_id: str, reason: str, *, keep_in_service_budget: bool = False) -> bool:
        """Refund a held reservation now; False when there is none (already released, or
        never made). Safe to repeat."""
        reservation = self.reservation(task_id)
        if reservation is None:
            return False
        with self._redis.pipeline(transaction=True) as pipe:
            for command in self.refund_commands(reservation, reason, keep_in_service_budget=keep_in_service_budget):
                pipe.execute_command(*command)
            return all(result == 1 for result in pipe.execute())

    # -- grants ----------------------------------------------------------------------

    def grant(self, user: str, credits: int, reason: str) -> None:
        """Extra credits for ``user``, today only, recorded in the ledger."""
        if credits < 1:
            raise ValueError("a grant is at least 1 credit")
        now = self._clock()
        day = day_of(now)
        ttl = self._ttl(day, now)
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(_user_key(day, user), "granted", credits)
            pipe.rpush(_ledger_key(day, user), self._entry("grant", user, None, credits, reason, now))
            pipe.expire(_user_key(day, user), ttl)
            pipe.expire(_ledger_key(day, user), ttl)
            pipe.execute()

    # -- reads -----------------------------------------------------------------------

    def summary(self, user: str, *, allowance: int | None) -> dict:
        """Today's standing of ``user``: allowance (with grants; None: unlimited),
        charged, reserved, remaining, and when the day resets."""
        now = self._clock()
        day = day_of(now)
        counters = self._counters(self._redis.hgetall(_user_key(day, user)), ("charged", "reserved", "granted"))
        total = None if allowance is None else allowance + counters["granted"]
        return {
            "user": user,
            "day": day,
            "allowance": total,
            "granted": counters["granted"],
            "charged": counters["charged"],
            "reserved": counters["reserved"],
            "remaining": None if total is None else max(0, total - counters["charged"] - counters["reserved"]),
            "resets_at": _iso(now + seconds_until_reset(now)),
        }

    def user_history(self, user: str, days: int) -> list[dict]:
        """The last ``days`` UTC days of ``user`` (today first): counters (``allowance``:
        the allowance of their last reservation that day, None before any) and entries."""
        day_list = self._recent_days(days)
        with self._redis.pipeline(transaction=False) as pipe:
            for day in day_list:
                pipe.hgetall(_user_key(day, user))
                pipe.lrange(_ledger_key(day, user), 0, -1)
            replies = pipe.execute()
        return [
            {"day": day, **self._counters(raw, ("charged", "reserved", "granted")),
             "allowance": _numbers(raw).get("allowance"), "entries": [json.loads(entry) for entry in entries]}
            for day, raw, entries in zip(day_list, replies[::2], replies[1::2], strict=True)
        ]

    def service_totals(self, days: int) -> list[dict]:
        """The service's credits over the last ``days`` UTC days (today first)."""
        day_list = self._recent_days(days)
        with self._redis.pipeline(transaction=False) as pipe:
            for day in day_list:
                pipe.hgetall(_service_key(day))
            replies = pipe.execute()
        return [{"day": day, **self._counters(counters, ("reserved", "charged", "refunded"))}
                for day, counters in zip(day_list, replies, strict=True)]

    @property
    def ledger_days(self) -> int:
        return self._ledger_days

    # -- helpers ---------------------------------------------------------------------

    def _recent_days(self, days: int) -> list[str]:
        if not 1 <= days <= self._ledger_days + 1:
            raise ValueError(f"days must be 1..{self._ledger_days + 1} (the ledger keeps no more)")
        today = datetime.fromtimestamp(self._clock(), UTC)
        return [(today - timedelta(days=back)).strftime("%Y-%m-%d") for back in range(days)]

    def _ttl(self, day: str, now: float) -> int:
        """Seconds to keep a day's keys: until ``ledger_days`` days after the day ends.
        Relative to our clock (not Redis's EXPIREAT) so an injected clock stays consistent."""
        return max(1, math.ceil(_day_start(day) + (self._ledger_days + 1) * DAY_SECONDS - now))

    @staticmethod
    def _entry(kind: str, user: str, task_id: str | None, credits: int, reason: str, now: float) -> str:
        return json.dumps({"kind": kind, "user": user, "task": task_id, "credits": credits, "reason": reason,
                           "time": _iso(now)}, separators=(",", ":"))

    @staticmethod
    def _counters(raw: dict, names: tuple[str, ...]) -> dict[str, int]:
        values = _numbers(raw)
        return {name: values.get(name, 0) for name in names}


def _numbers(raw: dict) -> dict[str, int]:
    return {_text(key): int(value) for key, value in raw.items()}


def _limit(limit: int | None) -> str:
    return "" if limit is None else str(int(limit))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
