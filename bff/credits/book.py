"""The credit book: daily allowances per user and a daily budget for the service, in Redis.

A task's price is *reserved* before any provider call, in the same atomic step that
records the task (``reserve`` runs the caller's writes in its script). When the task
ends, the reservation is released exactly once: *settled* at what the provider charged,
or *refunded*. Everything counts against the UTC day the reservation was made, however
late it is settled.

Keys (all under ``bff:credits:``; a day is ``YYYY-MM-DD`` in UTC):
- ``{day}:user:{user}``: hash ``reserved`` (in flight), ``charged``, ``granted`` (extra
  credits for that day).
- ``{day}:service``: hash ``reserved``, ``charged``, ``refunded`` for the whole service.
- ``{day}:ledger:{user}``: list of JSON entries ``{kind, user, task, credits, reason, time}``
  (kind: reserve, charge, refund, grant).
- ``task:{task_id}``: hash ``user``, ``day``, ``price``, ``state`` (``reserved`` until
  released, then ``released``): the per-task marker that makes releasing idempotent.
A day's keys are kept until ``ledger_days`` days after the day ends.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

import redis

PREFIX = "bff:credits:"
DAY_SECONDS = 86400

CREDITS_EXHAUSTED = "credits_exhausted"
SERVICE_BUDGET_EXHAUSTED = "service_budget_exhausted"
# A caller's ``SET ... NX`` found its key taken: nothing was written, nothing reserved.
WRITE_CONFLICT = "write_conflict"

# The outcome of a provider call that may or may not have run (and been billed).
PROVIDER_OUTCOME_UNKNOWN = "provider_outcome_unknown"


@dataclass(frozen=True)
class Reservation:
    """Credits held for one task; small enough to live on the task record as a dict."""

    task_id: str
    user: str
    day: str
    price: int

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Reservation":
        return cls(task_id=data["task_id"], user=data["user"], day=data["day"], price=int(data["price"]))


@dataclass(frozen=True)
class ReserveResult:
    reservation: Reservation | None  # None when refused
    refusal: str | None = None  # CREDITS_EXHAUSTED, SERVICE_BUDGET_EXHAUSTED or WRITE_CONFLICT
    retry_after_seconds: int | None = None  # with the two exhaustions: until the UTC day resets
    already_reserved: bool = False  # the task had a reservation: nothing was reserved or written

    @property
    def accepted(self) -> bool:
        return self.reservation is not None


# The commands a caller may pass to ``reserve`` as ``writes``. Each has its key first,
# and none of them can fail on a well-typed key, so the script never stops half way.
_RESERVE_SCRIPT = """
local existing = redis.call('HMGET', KEYS[1], 'user', 'day', 'price')
if existing[1] then
  return {'existing', existing[1], existing[2], existing[3]}
end

local allowed = {SET = true, ZADD = true, HSET = true, EXPIRE = true, PEXPIRE = true, RPUSH = true}
local writes, position = {}, 9
for index = 1, tonumber(ARGV[8]) do
  local count = tonumber(ARGV[position])
  local command = {}
  for offset = 1, count do command[offset] = ARGV[position + offset] end
  position = position + count + 1
  local name = string.upper(command[1])
  if not allowed[name] then
    return redis.error_reply('credits: command not allowed in writes: ' .. name)
  end
  table.insert(command, 2, KEYS[4 + index])
  writes[index] = command
end
-- Every check before any change: a script that stops half way keeps what it wrote.
for _, command in ipairs(writes) do
  if string.upper(command[1]) == 'SET' then
    for offset = 4, #command do
      if string.upper(command[offset]) == 'NX' and redis.call('EXISTS', command[2]) == 1 then
        return {'write_conflict'}
      end
    end
  end
end

local price = tonumber(ARGV[3])
local user = redis.call('HMGET', KEYS[2], 'reserved', 'charged', 'granted')
if ARGV[4] ~= '' then
  local used = (tonumber(user[1]) or 0) + (tonumber(user[2]) or 0)
  if used + price > tonumber(ARGV[4]) + (tonumber(user[3]) or 0) then
    return {'credits_exhausted'}
  end
end
if ARGV[5] ~= '' then
  local service = redis.call('HMGET', KEYS[3], 'reserved', 'charged')
  if (tonumber(service[1]) or 0) + (tonumber(service[2]) or 0) + price > tonumber(ARGV[5]) then
    return {'service_budget_exhausted'}
  end
end

for _, command in ipairs(writes) do
  redis.call(unpack(command))
end
local ttl = ARGV[6]
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'day', ARGV[2], 'price', price, 'state', 'reserved')
redis.call('HINCRBY', KEYS[2], 'reserved', price)
redis.call('HINCRBY', KEYS[3], 'reserved', price)
redis.call('RPUSH', KEYS[4], ARGV[7])
for key = 1, 4 do redis.call('EXPIRE', KEYS[key], ttl) end
return {'reserved'}
"""

# Releases a reservation once: the per-task state moves from ``reserved`` to
# ``released`` in the same script that moves the counters.
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
redis.call('RPUSH', KEYS[4], ARGV[5])
for key = 2, 4 do redis.call('EXPIRE', KEYS[key], ARGV[6]) end
return 1
"""


def _user_key(day: str, user: str) -> str:
    return f"{PREFIX}{day}:user:{user}"


def _service_key(day: str) -> str:
    return f"{PREFIX}{day}:service"


def _ledger_key(day: str, user: str) -> str:
    return f"{PREFIX}{day}:ledger:{user}"


def _task_key(task_id: str) -> str:
    return f"{PREFIX}task:{task_id}"


def day_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")


def _day_start(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()


def seconds_until_reset(now: float) -> int:
    """Whole seconds until the next UTC midnight, at least 1 (a Retry-After value)."""
    return max(1, math.ceil(_day_start(day_of(now)) + DAY_SECONDS - now))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def charged_credits(reservation: Reservation, credits_consumed: float | str | None) -> int:
    """What to settle a finished task at: what the provider reported it consumed (Tripo's
    ``credits_consumed``, a decimal, rounded up), else the reserved price."""
    if credits_consumed is None:
        return reservation.price
    return math.ceil(Decimal(str(credits_consumed)))


class CreditBook:
    def __init__(self, redis_client: redis.Redis, *, ledger_days: int = 90, clock: Callable[[], float] = time.time):
        if ledger_days < 1:
            raise ValueError("ledger_days must be at least 1")
        self._redis = redis_client
        self._ledger_days = ledger_days
        self._clock = clock

    # -- reserving -------------------------------------------------------------------

    def reserve(self, user: str, task_id: str, price: int, *, allowance: int | None, service_budget: int | None,
                writes: list[list] | Callable[[Reservation], list[list]], reason: str = "reserved") -> ReserveResult:
        """Hold ``price`` credits for ``task_id`` and run ``writes`` (SET, ZADD, HSET,
        EXPIRE, PEXPIRE, RPUSH commands, key first after the name), all or nothing.
        ``writes`` may be a function of the new reservation, for a task record that
        carries it (its day is fixed here, once).

        Refused when the user's charged + reserved credits plus ``price`` would exceed
        ``allowance`` plus today's grants, or the service's would exceed
        ``service_budget`` (None: no limit). A task that already has a reservation gets
        it back, and nothing is reserved or written again.
        """
        if price < 0:
            raise ValueError("a price is at least 0 credits")
        now = self._clock()
        day = day_of(now)
        reservation = Reservation(task_id=task_id, user=user, day=day, price=price)
        if callable(writes):
            writes = writes(reservation)
        entry = self._entry("reserve", user, task_id, price, reason, now)
        keys = [_task_key(task_id), _user_key(day, user), _service_key(day), _ledger_key(day, user)]
        args: list = [user, day, price, _limit(allowance), _limit(service_budget), self._ttl(day, now), entry,
                      len(writes)]
        for command in writes:
            if len(command) < 2:
                raise ValueError(f"a write is a command name and a key, then arguments: {command!r}")
            keys.append(command[1])
            args += [len(command) - 1, command[0], *command[2:]]
        outcome = [_text(part) for part in self._redis.eval(_RESERVE_SCRIPT, len(keys), *keys, *args)]
        if outcome[0] == "existing":
            existing = Reservation(task_id=task_id, user=outcome[1], day=outcome[2], price=int(outcome[3]))
            return ReserveResult(existing, already_reserved=True)
        if outcome[0] == "reserved":
            return ReserveResult(reservation)
        if outcome[0] == WRITE_CONFLICT:
            return ReserveResult(None, refusal=WRITE_CONFLICT)
        return ReserveResult(None, refusal=outcome[0], retry_after_seconds=seconds_until_reset(now))

    def reservation(self, task_id: str) -> Reservation | None:
        """The task's reservation while it is still held (not yet settled or refunded)."""
        fields = {_text(key): _text(value) for key, value in self._redis.hgetall(_task_key(task_id)).items()}
        if fields.get("state") != "reserved":
            return None
        return Reservation(task_id=task_id, user=fields["user"], day=fields["day"], price=int(fields["price"]))

    # -- releasing: commands for the task store's terminal transaction ---------------

    def settle_commands(self, reservation: Reservation, charged: int, reason: str) -> list[list]:
        """Commands that release the reservation at ``charged`` credits (what the provider
        reported; the counters move by the difference to the price). Append them to the
        transaction that writes the task's terminal state: they take effect exactly when
        it commits, and at most once whoever else releases the same reservation."""
        if charged < 0:
            raise ValueError("charged credits are at least 0")
        return self._release_commands(reservation, kind="charge", credits=charged, reason=reason,
                                      user_charged=charged, service_charged=charged, service_refunded=0)

    def refund_commands(self, reservation: Reservation, reason: str, keep_in_service_budget: bool = False) -> list[list]:
        """Commands that give the whole reservation back to the user. With
        ``keep_in_service_budget`` (the provider may have run and billed the task, e.g.
        ``provider_outcome_unknown``) the credits stay spent in the service's budget."""
        kept = reservation.price if keep_in_service_budget else 0
        return self._release_commands(reservation, kind="refund", credits=reservation.price, reason=reason,
                                      user_charged=0, service_charged=kept, service_refunded=reservation.price - kept)

    def _release_commands(self, reservation: Reservation, *, kind: str, credits: int, reason: str,
                          user_charged: int, service_charged: int, service_refunded: int) -> list[list]:
        now = self._clock()
        day, user = reservation.day, reservation.user
        keys = [_task_key(reservation.task_id), _user_key(day, user), _service_key(day), _ledger_key(day, user)]
        entry = self._entry(kind, user, reservation.task_id, credits, reason, now)
        args = [reservation.price, user_charged, service_charged, service_refunded, entry, self._ttl(day, now)]
        return [["EVAL", _RELEASE_SCRIPT, len(keys), *keys, *args]]

    # -- releasing on its own: reconciliation of anything left behind ----------------

    def settle(self, task_id: str, charged: int, reason: str = "charged") -> bool:
        """Settle a held reservation now; False when there is none (already released, or
        never made). Safe to repeat."""
        reservation = self.reservation(task_id)
        return reservation is not None and self._run(self.settle_commands(reservation, charged, reason))

    def refund(self, task_id: str, reason: str, *, keep_in_service_budget: bool = False) -> bool:
        """Refund a held reservation now; False when there is none. Safe to repeat."""
        reservation = self.reservation(task_id)
        return reservation is not None and self._run(self.refund_commands(reservation, reason, keep_in_service_budget))

    def _run(self, commands: list[list]) -> bool:
        with self._redis.pipeline(transaction=True) as pipe:
            for command in commands:
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
        """The last ``days`` UTC days of ``user`` (today first): counters and ledger entries."""
        day_list = self._recent_days(days)
        with self._redis.pipeline(transaction=False) as pipe:
            for day in day_list:
                pipe.hgetall(_user_key(day, user))
                pipe.lrange(_ledger_key(day, user), 0, -1)
            replies = pipe.execute()
        return [
            {"day": day, **self._counters(counters, ("charged", "reserved", "granted")),
             "entries": [json.loads(entry) for entry in entries]}
            for day, counters, entries in zip(day_list, replies[::2], replies[1::2])
        ]

    def service_totals(self, days: int) -> list[dict]:
        """The service's credits over the last ``days`` UTC days (today first)."""
        day_list = self._recent_days(days)
        with self._redis.pipeline(transaction=False) as pipe:
            for day in day_list:
                pipe.hgetall(_service_key(day))
            replies = pipe.execute()
        return [{"day": day, **self._counters(counters, ("reserved", "charged", "refunded"))}
                for day, counters in zip(day_list, replies)]

    # -- helpers ---------------------------------------------------------------------

    def _recent_days(self, days: int) -> list[str]:
        if not 1 <= days <= self._ledger_days + 1:
            raise ValueError(f"days must be 1..{self._ledger_days + 1} (the ledger keeps no more)")
        today = datetime.fromtimestamp(self._clock(), timezone.utc)
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
        values = {_text(key): int(value) for key, value in raw.items()}
        return {name: values.get(name, 0) for name in names}


def _limit(limit: int | None) -> str:
    return "" if limit is None else str(int(limit))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
