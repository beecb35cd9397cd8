"""Task records in Redis, and the indexes the poller walks.

Keys (all under ``bff:``):
- ``task:{id}``: the task record as JSON. Expires ``retention_seconds`` after the task
  ends (and, as a backstop, ``open_ttl_seconds`` after creation if it never ends).
- ``tasks:open``: sorted set of every non-terminal task, scored by creation time (read
  whole only by the hourly ``index_timers``).
- ``tasks:polling:{service}``: sorted set of tasks submitted to a provider and not yet
  seen terminal: the only tasks the poller spends provider calls on.
- ``task:{id}:urls``: the provider's signed output URLs, kept only as long as they live.
- ``task:{id}:upload``: an uploaded input image (hash: data, content_type, filename),
  deleted when the task ends.
- ``task:{id}:images``: the images a task produced (a list), kept as long as the task; with
  object storage, only while storage cannot take them (deleted as the task completes).
- ``task:{id}:conversions``: a model's conversions (hash: the format and options of a
  conversion, see ``bff.tasks.conversions``, to the id of the latest such conversion task).
- ``task:{id}:view``: what the status route serves (see ``bff.tasks.status_view``),
  written with the record and expiring with it.
- ``capacity:{bucket}:in_use``: tasks holding a slot of a concurrency bucket (kept in
  step with their records), or the start times of a rolling-window bucket.
- ``capacity:{bucket}:waiting``: tasks waiting for capacity, scored by creation time.
- ``timers:{timer}``: reconciliation's timers (``bff.tasks.lifecycle.timer_origins``):
  the open tasks each rule may apply to, scored by when its clock started; kept in step
  with the records, so a poll cycle reads only the tasks whose time has come.
  ``timers:indexed`` marks the last hourly rebuild of them from the records.
- ``task:{id}:storing``: the lease of the worker storing a task's files (``workers.storing``).

Every change goes through ``update``: an optimistic transaction (WATCH/MULTI) that reads
the record, applies a pure change function, and writes the record and its index entries
together. A terminal record is final: no change applies to it.

Two hooks let another part of the service act atomically with a task's life without the
store knowing it (the credits, see ``bff.credits``): an *admission* checked and written by
the script that records a task (a refusal writes nothing), and *end commands* run in the
transaction that makes a task terminal (exactly once per task).
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import redis

from bff.sliding_window import SLIDING_WINDOW_LUA, WindowCheck

from . import conversions, status_view
from .capacity import BUCKET_NAMES, IN_FLIGHT_BUCKETS, Bucket, bucket_name
from .lifecycle import TIMERS, TaskChange, timer_origins
from .record import CLAIMED, COMPLETED, IMAGES, STORING, SUBMITTED, WAITING, Service, Task, Upload

if TYPE_CHECKING:
    from bff.metrics import Metrics

_PREFIX = "bff:"
_OPEN = f"{_PREFIX}tasks:open"
TASK_KEY_PREFIX = f"{_PREFIX}task:"  # a record's key is this and its id


def task_key(task_id: str, part: str | None = None) -> str:
    """The record's key, or the key of one of its parts (urls, upload, images, view...)."""
    return f"{TASK_KEY_PREFIX}{task_id}" + (f":{part}" if part else "")


def _capacity_key(bucket: str, part: str) -> str:
    """A capacity bucket's ``in_use`` or ``waiting`` set."""
    return f"{_PREFIX}capacity:{bucket}:{part}"


def _polling_key(service: str) -> str:
    return f"{_PREFIX}tasks:polling:{service}"


def timer_key(timer: str) -> str:
    """A timer's sorted set (see bff.tasks.lifecycle.TIMERS)."""
    return f"{_PREFIX}timers:{timer}"


_TIMERS_INDEXED = f"{_PREFIX}timers:indexed"
_T = TypeVar("_T")


class TransactionContention(Exception):
    """Other writers kept winning: the caller fails as on Redis being unavailable (a web
    request answers 503 with Retry-After; a worker tries again on its next nudge)."""


# Conflicts are short-lived (a few writers on one task or bucket); this many attempts with
# growing random pauses gets through any realistic burst.
_TRANSACTION_ATTEMPTS = 50


@dataclass(frozen=True)
class Remembered:
    key: str
    value: str
    ttl_seconds: int


@dataclass(frozen=True)
class Admission:
    """What a new task must pass, and what it writes besides its own records, in the
    script that records it: ``check_args`` go to the store's admission check (which
    reads Redis and refuses, or not, before anything is written); ``writes`` run only
    when the task is recorded. Commands are lists: name, key, arguments."""

    check_args: list
    writes: list[list]


class CreateRefused(Exception):
    """The admission check refused the task: nothing was written. ``reason`` is the check's word."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class OverRequestLimit(Exception):
    """The request limit refused the task: nothing was written. ``window`` is what
    ``sliding_window`` answered, to tell the client when to retry."""

    def __init__(self, window: list[int]):
        super().__init__("over the request limit")
        self.window = window


class KeyTaken(Exception):
    """The idempotency key to remember is already taken: nothing was written. ``held`` is
    what it holds (an earlier request's answer)."""

    def __init__(self, held: bytes):
        super().__init__("idempotency key taken")
        self.held = held


# What a task's record holds once the task is void: see TaskStore.resolve_create.
_VOID = "void"

# Creates the record unless the key holds anything (a record, or the void mark), then runs
# the other writes (each given as its length followed by its words). Answers 1: recorded
# now, or by an earlier run of this same call (the key holds this very record); 0: not
# recorded; {'remembered', value}: the idempotency key (ARGV[4], '' for none) is taken;
# {'limited', window}: the request limit refused it (ARGV[5] counts the window's
# arguments, which follow: previous key, current key, limit, window in ms); a word: the
# admission check refused (the argument after the window's counts its arguments, which
# follow). The request is counted before the admission check, as every request is,
# admitted or not; every other write comes after every check: a script that stops half
# way keeps what it wrote.
_CREATE = """
local unpack = unpack or table.unpack
local existing = redis.call('GET', ARGV[1])
if existing then return existing == ARGV[2] and 1 or 0 end
if ARGV[4] ~= '' then
  local held = redis.call('GET', ARGV[4])
  if held then return {'remembered', held} end
end
local i = 6 + tonumber(ARGV[5])
if i > 6 then
  local window = sliding_window(ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]))
  if window[1] == 0 then return {'limited', window} end
end
local checked = i + tonumber(ARGV[i])
if checked > i then
  local refusal = admit({unpack(ARGV, i + 1, checked)})
  if refusal then return refusal end
end
redis.call('SET', ARGV[1], ARGV[2], 'EX', ARGV[3])
i = checked + 1
while i <= #ARGV do
  local length = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + length))
  i = i + length + 1
end
return 1
"""


def _create_script(admission_check: str) -> str:
    """The create script with ``admission_check`` as the body of ``admit(args)``: Lua that
    reads what it needs and returns a refusal word, or nothing to admit the task."""
    return f"{SLIDING_WINDOW_LUA}\nlocal function admit(args)\n{admission_check}\nend\n{_CREATE}"


# 1 when the record exists; otherwise the key is marked void for as long as a record could live.
_RESOLVE = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing ~= ARGV[2] and 1 or 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
return 0
"""


class TaskVoided(Exception):
    """The task was declared void after its create's outcome was unknown: it is not recorded."""


class TaskStore:
    def __init__(self, client: redis.Redis, *, retention_seconds: float, open_ttl_seconds: float,
                 metrics: Metrics | None = None, admission_check: str = "",
                 end_commands: Callable[[Task], list[list]] | None = None):
        self._redis = client
        self._create_script = client.register_script(_create_script(admission_check))
        # Commands to run in the transaction that ends a task (see the module docstring).
        self._end_commands = end_commands
        self._resolve_script = client.register_script(_RESOLVE)
        # Counts tasks created and ended in the very writes that create and end them.
        self._metrics = metrics
        self._retention_seconds = max(1, int(retention_seconds))
        # A backstop: an open record outlives its deadline only if no worker ever runs.
        self._open_ttl_seconds = max(1, int(open_ttl_seconds))

    def create(self, task: Task, upload: Upload | None = None, remember: Remembered | None = None,
               admission: Admission | None = None, window: WindowCheck | None = None) -> None:
        """Record a new task, with its uploaded input when it has one, a value to
        remember alongside (an idempotency answer) and what its ``admission`` writes:
        all or nothing, in one script, which first counts the request in its limit's
        ``window`` when given. Raises ``KeyTaken`` when ``remember``'s key is already
        taken, ``OverRequestLimit`` or ``CreateRefused`` when the limit or the admission
        check refuses the task.

        Running it again (redis-py re-sends a command whose reply was lost) changes
        nothing. Once the task is void it never writes: see ``resolve_create``."""
        args = self._create_args(task, upload, remember, admission, window)
        _check_created(task, self._create_script(args=args))

    def _create_args(self, task: Task, upload: Upload | None, remember: Remembered | None,
                     admission: Admission | None, window: WindowCheck | None,
                     others: list[list] | None = None) -> list:
        record, *writes = self.create_commands(task, upload, remember)
        window_args = [*window.keys, *window.args] if window else []
        check_args = admission.check_args if admission else []
        args = [record[1], record[2], self._open_ttl_seconds, remember.key if remember else "",
                len(window_args), *window_args, len(check_args), *check_args]
        for command in [*writes, *(others or []), *(admission.writes if admission else [])]:
            args += [len(command), *command]
        return args

    def create_commands(self, task: Task, upload: Upload | None = None,
                        remember: Remembered | None = None) -> list[list]:
        """The writes that record a new task, first the record itself (``SET key value
        NX EX ttl``), for a caller that must run them inside a script of its own."""
        commands: list[list] = [
            ["SET", task_key(task.id), task.to_json(), "NX", "EX", self._open_ttl_seconds],
            ["ZADD", _OPEN, task.created_at, task.id],
            ["HSET", view_key(task.id), *_flat(_view_fields(task))],
            ["EXPIRE", view_key(task.id), self._open_ttl_seconds],
            *(["ZADD", timer_key(timer), origin, task.id] for timer, origin in timer_origins(task).items()),
        ]
        if upload is not None:
            commands.append(["HSET", task_key(task.id, "upload"), *_flat(upload.as_mapping())])
            commands.append(["EXPIRE", task_key(task.id, "upload"), self._open_ttl_seconds])
        if remember is not None:
            commands.append(["SET", remember.key, remember.value, "EX", remember.ttl_seconds])
        if self._metrics is not None:
            commands += self._metrics.task_created_commands(task)
        return commands

    def resolve_create(self, task: Task) -> bool:
        """Settle a create whose outcome is unknown (its reply was lost): True when the
        task was recorded; False when it was not, and now never will be (the record's
        key holds a void mark, so a create that reaches Redis later writes nothing)."""
        return bool(self._resolve_script(keys=[task_key(task.id)], args=[self._open_ttl_seconds, _VOID]))

    def create_conversion(self, task: Task, remember: Remembered | None = None,
                          admission: Admission | None = None, window: WindowCheck | None = None) -> Task | None:
        """Record a conversion task and index it under its model, in one transaction; or,
        when the model already has a conversion of the same format and options that has
        not failed, record nothing and return that one (so two taps make one conversion)."""
        index = task_key(task.params[conversions.SOURCE], "conversions")
        fingerprint = conversions.fingerprint(task.params)
        # Written by the create script, so only with the task itself.
        index_writes: list[list] = [["HSET", index, fingerprint, task.id],
                                    ["EXPIRE", index, self._open_ttl_seconds]]  # outlives every conversion it names

        def body(pipe) -> Task | None:
            # A run after one whose EXEC ran but whose reply was lost (redis-py then raises
            # WatchError) finds this very task recorded: done, not a replay or a reuse.
            held = pipe.get(remember.key) if remember else None
            if held is not None:
                if remember is not None and held == remember.value.encode():
                    return None
                raise KeyTaken(held)  # a retry of the request that made a conversion gets its answer again
            earlier_id = pipe.hget(index, fingerprint)
            earlier = _parsed(pipe.get(task_key(earlier_id.decode()))) if earlier_id else None
            if earlier is not None and earlier.id == task.id:
                return None
            if earlier is not None and conversions.reusable(earlier):
                return earlier
            pipe.multi()
            self._create_script(args=self._create_args(task, None, remember, admission, window, index_writes),
                                client=pipe)
            _check_created(task, pipe.execute()[0])
            return None

        return self._optimistic((index,), body)

    def conversions(self, model_task_id: str) -> list[Task]:
        """The latest conversion of each format and options of a model, oldest first."""
        ids = _decoded(self._redis.hvals(task_key(model_task_id, "conversions")))
        return sorted(self.get_many(ids), key=lambda task: task.created_at)

    def upload(self, task_id: str) -> Upload | None:
        fields = self._redis.hgetall(task_key(task_id, "upload"))
        return Upload.from_mapping(fields) if fields else None

    def save_images(self, task_id: str, images: list[bytes]) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(task_key(task_id, "images"))
            pipe.rpush(task_key(task_id, "images"), *images)
            pipe.expire(task_key(task_id, "images"), self._retention_seconds)
            pipe.execute()

    # Results are bytes: the client decodes no responses.
    def image(self, task_id: str, index: int) -> bytes | None:
        return self._redis.lindex(task_key(task_id, "images"), index)  # type: ignore[return-value]

    def images(self, task_id: str) -> list[bytes]:
        return self._redis.lrange(task_key(task_id, "images"), 0, -1)  # type: ignore[return-value]

    def get(self, task_id: str) -> Task | None:
        return _parsed(self._redis.get(task_key(task_id)))

    def get_many(self, task_ids: list[str]) -> list[Task]:
        """The tasks that still exist among ``task_ids``, in order, in one round trip."""
        if not task_ids:
            return []
        raws = self._redis.mget([task_key(task_id) for task_id in task_ids])
        return [task for task in map(_parsed, raws) if task is not None]

    def update(self, task_id: str, change: TaskChange) -> Task | None:
        """Apply ``change`` to an open task atomically.

        Returns the new record, or None when nothing was written: the task is unknown or
        terminal, or ``change`` returned None. ``change`` may run more than once when
        another writer gets in first, so it must not have side effects.
        """

        def body(pipe, current: Task) -> Task | None:
            updated = change(current)
            if updated is not None:
                pipe.multi()
                self._write(pipe, updated)
            return updated

        return self._transaction((task_key(task_id),), body)

    def claim(self, task_id: str, bucket: Bucket, decide: Callable[[Task, bool], Task | None]) -> Task | None:
        """Take capacity for an open task, or queue it, in one transaction.

        ``decide(task, admitted)`` returns the new record: ``admitted`` is true when the
        bucket has room for this task after every older waiting task. Returns the new
        record, or None when nothing was written.
        """
        in_use, waiting = _capacity_key(bucket.name, "in_use"), _capacity_key(bucket.name, "waiting")

        def body(pipe, current: Task) -> Task | None:
            now = time.time()
            older_waiting = pipe.zcount(waiting, "-inf", f"({current.created_at}")
            updated = decide(current, older_waiting < bucket.limit - self._in_use(pipe, bucket, now))
            if updated is None:
                return None
            pipe.multi()
            self._write(pipe, updated)
            if bucket.window_seconds and updated.submission == CLAIMED:
                pipe.zremrangebyscore(in_use, "-inf", now - bucket.window_seconds)
                pipe.zadd(in_use, {f"{task_id}:{now}": now})
            return updated

        return self._transaction((task_key(task_id), in_use, waiting), body)

    def _transaction(self, keys: tuple[str, ...], body) -> Task | None:
        """Optimistic transaction on an open task (``keys[0]``) and the other ``keys``:
        ``body(pipe, task)`` reads, then queues its writes after ``pipe.multi()`` and
        returns the new record (or None to write nothing)."""

        def on_open_task(pipe) -> Task | None:
            current = _parsed(pipe.get(keys[0]))
            if current is None or current.is_terminal:
                return None
            updated = body(pipe, current)
            if updated is not None:
                pipe.execute()
            return updated

        return self._optimistic(keys, on_open_task)

    def _optimistic(self, keys: tuple[str, ...], body: Callable[[redis.client.Pipeline], _T]) -> _T:
        """Run ``body(pipe)`` with ``keys`` watched; it reads, then queues its writes after
        ``pipe.multi()`` and executes them. Runs again, after a short random pause, when
        another writer changed a watched key first."""
        for attempt in range(_TRANSACTION_ATTEMPTS):
            with self._redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*keys)
                    return body(pipe)
                except redis.WatchError:
                    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise TransactionContention(f"gave up after {_TRANSACTION_ATTEMPTS} conflicting writes to {keys[0]}")

    def free_capacity(self, bucket: Bucket) -> int:
        return max(0, bucket.limit - self._in_use(self._redis, bucket, time.time()))

    def oldest_waiting(self, bucket: Bucket, count: int) -> list[str]:
        return _decoded(self._redis.zrange(_capacity_key(bucket.name, "waiting"), 0, count - 1)) if count > 0 else []

    def queue_position(self, task: Task) -> int | None:
        """1 for the next task to be sent, when the task waits for capacity."""
        if task.submission != WAITING:
            return None
        rank = self._redis.zrank(_capacity_key(bucket_name(task.service, task.kind), "waiting"), task.id)
        return None if rank is None else int(rank) + 1  # type: ignore[arg-type]

    def mark_dispatched(self, task_id: str, seconds: float) -> bool:
        """True for the one caller that should send this waiting task now."""
        return bool(self._redis.set(task_key(task_id, "dispatched"), "1", nx=True, px=int(seconds * 1000)))

    def clear_dispatched(self, task_id: str) -> None:
        self._redis.delete(task_key(task_id, "dispatched"))

    @staticmethod
    def _in_use(client, bucket: Bucket, now: float) -> int:
        key = _capacity_key(bucket.name, "in_use")
        if bucket.window_seconds:
            return client.zcount(key, f"({now - bucket.window_seconds}", "+inf")
        return client.zcard(key)

    def capacity_counts(self, buckets: list[Bucket]) -> dict[str, tuple[int, int]]:
        """(waiting, in use) of each bucket, in one round trip."""
        now = time.time()
        with self._redis.pipeline(transaction=False) as pipe:
            for bucket in buckets:
                pipe.zcard(_capacity_key(bucket.name, "waiting"))
                self._in_use(pipe, bucket, now)
            counts = pipe.execute()
        return {bucket.name: (counts[2 * i], counts[2 * i + 1]) for i, bucket in enumerate(buckets)}

    def open_task_ids(self) -> list[str]:
        return _decoded(self._redis.zrange(_OPEN, 0, -1))

    def forget(self, task_ids: set[str]) -> None:
        """Drop every index entry of tasks whose records are gone (expired, evicted,
        deleted by hand): a stale capacity entry would hold a slot, or block its queue,
        for good."""
        if task_ids:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(_OPEN, *task_ids)
                pipe.delete(*map(view_key, task_ids))
                for timer in TIMERS:
                    pipe.zrem(timer_key(timer), *task_ids)
                for service in Service:
                    pipe.zrem(_polling_key(service), *task_ids)
                for bucket in BUCKET_NAMES:
                    pipe.zrem(_capacity_key(bucket, "in_use"), *task_ids)
                    pipe.zrem(_capacity_key(bucket, "waiting"), *task_ids)
                pipe.execute()

    def due_task_ids(self, timer: str, started_before: float) -> list[str]:
        """Tasks whose ``timer`` started before ``started_before``, earliest first."""
        return _decoded(self._redis.zrangebyscore(timer_key(timer), "-inf", started_before))

    def index_timers(self, every_seconds: float, batch: int = 200) -> set[str]:
        """Once per ``every_seconds`` across processes: set every open task's timers from
        its record. Writes keep them in step; this covers records written by a version
        before timers (a rolling deploy). Returns the ids of open tasks whose records are
        gone (none when another call had this period's turn)."""
        if not self._redis.set(_TIMERS_INDEXED, "1", nx=True, px=max(1, int(every_seconds * 1000))):
            return set()
        ids, gone = self.open_task_ids(), set()
        for start in range(0, len(ids), batch):
            batch_ids = ids[start : start + batch]
            keys = tuple(map(task_key, batch_ids))
            gone |= set(batch_ids) - self._optimistic(keys, functools.partial(_index_timers_of, keys=keys))
        return gone

    def polling_task_ids(self, service: str) -> list[str]:
        """Tasks submitted to ``service`` and still running there, oldest first."""
        return _decoded(self._redis.zrange(_polling_key(service), 0, -1))

    def cache_output_urls(self, task_id: str, urls: dict[str, str], ttl_seconds: float) -> None:
        self._redis.set(task_key(task_id, "urls"), json.dumps(urls), px=max(1, int(ttl_seconds * 1000)))

    def cached_output_urls(self, task_id: str) -> dict[str, str]:
        raw = self._redis.get(task_key(task_id, "urls"))
        return json.loads(raw) if raw else {}

    def claim_url_refresh(self, task_id: str, seconds: float) -> bool:
        """True for the one caller that should ask a worker for fresh URLs right now."""
        key = task_key(task_id, "urls-refreshing")
        return bool(self._redis.set(key, "1", nx=True, px=max(1, int(seconds * 1000))))

    def ensure_view(self, task_id: str) -> None:
        """Render the view of a record written without one (by a version before views, or
        by hand), to expire with the record; nothing when the record is gone."""

        def body(pipe) -> None:
            task = _parsed(pipe.get(task_key(task_id)))
            if task is None:
                return None
            ttl_ms = pipe.pttl(task_key(task_id))
            pipe.multi()
            _write_view(pipe, task, ttl_ms / 1000 if ttl_ms > 0 else None)
            pipe.execute()
            return None

        self._optimistic((task_key(task_id),), body)

    def _write(self, pipe: redis.client.Pipeline, task: Task) -> None:
        key = task_key(task.id)
        if task.is_terminal:
            pipe.set(key, task.to_json(), ex=self._retention_seconds)
            _write_view(pipe, task, self._retention_seconds)
        else:
            # The backstop TTL runs from the last change: a task waiting its turn for hours
            # keeps its record and its upload.
            pipe.set(key, task.to_json(), ex=self._open_ttl_seconds)
            _write_view(pipe, task, self._open_ttl_seconds)
            pipe.expire(task_key(task.id, "upload"), self._open_ttl_seconds)
        if task.is_terminal:
            pipe.delete(task_key(task.id, "upload"))  # inputs are not kept past their use
            if self._metrics is not None:
                self._metrics.task_finished(task, pipe=pipe)
            for command in self._end_commands(task) if self._end_commands else []:
                pipe.execute_command(*command)
            pipe.zrem(_OPEN, task.id)
            pipe.zrem(_polling_key(task.service), task.id)
        elif task.submission == SUBMITTED:
            pipe.zadd(_polling_key(task.service), {task.id: task.submitted_at or task.updated_at})
        elif task.submission == STORING:
            pipe.zrem(_polling_key(task.service), task.id)  # the provider has nothing more to say
        if task.status == COMPLETED and IMAGES in task.object_keys:
            pipe.delete(task_key(task.id, "images"))  # paid images kept while storage was down: stored now
        self._write_capacity(pipe, task)
        _write_timers(pipe, task)

    @staticmethod
    def _write_capacity(pipe: redis.client.Pipeline, task: Task) -> None:
        """Keep a task's capacity entries in step with its record: that is what frees a
        slot whatever ends the task, so no slot can leak."""
        bucket = bucket_name(task.service, task.kind)
        open_ = not task.is_terminal
        if open_ and task.submission == WAITING:
            pipe.zadd(_capacity_key(bucket, "waiting"), {task.id: task.created_at})
        else:
            pipe.zrem(_capacity_key(bucket, "waiting"), task.id)
        if bucket in IN_FLIGHT_BUCKETS:
            if open_ and task.submission in (CLAIMED, SUBMITTED):
                pipe.zadd(_capacity_key(bucket, "in_use"), {task.id: task.claimed_at or task.updated_at})
            else:
                pipe.zrem(_capacity_key(bucket, "in_use"), task.id)


def view_key(task_id: str) -> str:
    return task_key(task_id, "view")


def _view_fields(task: Task) -> dict[str, str]:
    waiting = task.submission == WAITING and not task.is_terminal
    return status_view.view_fields(
        task, _capacity_key(bucket_name(task.service, task.kind), "waiting") if waiting else None)


def _write_view(pipe: redis.client.Pipeline, task: Task, ttl_seconds: float | None) -> None:
    """Replace the task's view (fields of an earlier state must not linger)."""
    key = view_key(task.id)
    pipe.delete(key)
    pipe.hset(key, items=_flat(_view_fields(task)))
    if ttl_seconds is not None:
        pipe.pexpire(key, max(1, int(ttl_seconds * 1000)))


def _index_timers_of(pipe: redis.client.Pipeline, keys: tuple[str, ...]) -> set[str]:
    """With the records at ``keys`` watched: their timers, written unless one changed
    meanwhile. Returns the ids of the records found."""
    tasks = [task for task in map(_parsed, pipe.mget(keys)) if task is not None]
    pipe.multi()
    for task in tasks:
        _write_timers(pipe, task)
    pipe.execute()
    return {task.id for task in tasks}


def _write_timers(pipe: redis.client.Pipeline, task: Task) -> None:
    """The task's timers as its state has them, and no other."""
    origins = timer_origins(task)
    for timer in TIMERS:
        if timer in origins:
            pipe.zadd(timer_key(timer), {task.id: origins[timer]})
        else:
            pipe.zrem(timer_key(timer), task.id)


def _check_created(task: Task, outcome) -> None:
    """Raise unless the create script recorded the task (see ``_CREATE``)."""
    if isinstance(outcome, list):
        word, detail = outcome
        if word == b"remembered":
            raise KeyTaken(detail)
        raise OverRequestLimit(detail)
    if isinstance(outcome, bytes | str):
        raise CreateRefused(outcome.decode() if isinstance(outcome, bytes) else outcome)
    if not outcome:
        raise TaskVoided(task.id)


def _parsed(raw) -> Task | None:
    """The task a record's key holds: None for no record, or for a void task."""
    if not raw or raw in (_VOID, _VOID.encode()):
        return None
    return Task.from_json(raw)


def _flat(mapping: dict) -> list:
    return [item for pair in mapping.items() for item in pair]


def _decoded(values: list) -> list[str]:
    return [value.decode() if isinstance(value, bytes) else value for value in values]
