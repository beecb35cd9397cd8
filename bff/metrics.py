"""Prometheus metrics for operators, counted in Redis so that every process adds to the
same totals.

Web (gunicorn workers) and worker (Dramatiq processes) roles are separate processes, and
the platforms (Heroku, Railway) can scrape only the web service. So no count lives in a
process: counters and histogram buckets are fields of Redis hashes, one hash per metric
(``bff:metrics:{metric name}``), one field per label set (a JSON list of the label values,
plus the bucket's upper bound or ``sum`` for histograms). Any web process answering a
scrape reads every hash back in one round trip and reports the same totals.

What counting costs:
- HTTP requests: nothing on the request's path. Counts add up in this process and a
  daemon thread sends them at most once a second (and before this process answers a
  scrape). Up to a second of another process's requests may be missing from a scrape.
- Task transitions: no round trip of their own: they ride on the task store's
  transaction (``pipe=``), which also makes them exactly once.
- Provider calls, poll cycles: one round trip each. Credits: none with ``pipe=``, else one.
A histogram observation increments only the bucket it falls in (cumulated when read) and
the sum; the count is the sum of the buckets.

A Redis error while counting never reaches the caller: the counts are dropped and a
warning is logged at most once a minute. ``render`` does raise (the scrape should fail).

Label values are bounded: each must be one of the project's own words (services, kinds,
error codes, buckets, provider operations...) or, for the route, an endpoint name;
anything else is counted as ``other``, so a URL, prompt or id passed by mistake can
neither leak nor multiply the series.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from bff.providers.calls import OK, OPERATIONS
from bff.providers.errors import FINAL, RETRY, UNKNOWN
from bff.tasks.capacity import BUCKET_NAMES
from bff.tasks.error_codes import TASK_ERROR_CODES
from bff.tasks.record import COMPLETED, TERMINAL_STATUSES, Kind, Service, Task

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 1.0
FAILURE_LOG_INTERVAL_SECONDS = 60.0
_KEY_PREFIX = "bff:metrics:"
DRAMATIQ_NAMESPACE = "dramatiq"  # RedisBroker's default: its queues' keys start with it

# The values each label may take; ``OTHER`` stands for anything else.
OTHER = "other"
UNMATCHED_ROUTE = "unmatched"  # a request no URL rule matched (a 404 before routing)
_ROUTE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an endpoint name, such as "tasks.status"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SERVICES = frozenset(map(str, Service))
KINDS = frozenset(map(str, Kind))
ERROR_CODES = frozenset(TASK_ERROR_CODES)
BUCKETS = frozenset(BUCKET_NAMES)
PROVIDER_OUTCOMES = frozenset({OK, RETRY, FINAL, UNKNOWN})
RESERVED, CHARGED, REFUNDED = "reserved", "charged", "refunded"
CREDIT_KINDS = frozenset({RESERVED, CHARGED, REFUNDED})
QUEUE_STATES = ("ready", "fetched", "delayed")


def metric_key(metric_name: str) -> str:
    """The Redis hash holding one metric's counts."""
    return f"{_KEY_PREFIX}{metric_name}"


def dramatiq_key(queue: str, part: str = "") -> str:
    """A key of Dramatiq's Redis broker: a queue's list, or ``.msgs``, ``.DQ``, ``.XQ``..."""
    return f"{DRAMATIQ_NAMESPACE}:{queue}{part}"


@dataclass(frozen=True)
class _Family:
    """One metric: a counter, or a histogram when it has ``buckets``."""

    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @functools.cached_property
    def bound_labels(self) -> tuple[str, ...]:
        """The ``le`` label of each bucket, ``+Inf`` last."""
        return (*map(floatToGoString, self.buckets), "+Inf")


# Upper bounds in seconds. HTTP: the read path takes milliseconds. Provider calls: image
# edits take minutes. Tasks: up to the 30 min deadline. Poll cycles: around the 3 s
# interval, which is a bound so an alert can compare with it exactly.
HTTP_SECONDS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROVIDER_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0)
TASK_SECONDS = (10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0)
POLL_CYCLE_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = _Family("bff_http_requests_total", "HTTP requests answered, by URL rule (endpoint name).",
                        ("route", "method", "status"))
HTTP_DURATION = _Family("bff_http_request_duration_seconds", "Time to answer an HTTP request.", ("route",),
                        HTTP_SECONDS)
TASKS_CREATED = _Family("bff_tasks_created_total", "Tasks accepted.", ("service", "kind"))
TASKS_FINISHED = _Family("bff_tasks_finished_total", "Tasks that ended: completed, or failed with an error code.",
                         ("service", "kind", "status", "error_code"))
TASK_DURATION = _Family("bff_task_duration_seconds", "Time from a task's creation to its end.", ("service", "kind"),
                        TASK_SECONDS)
PROVIDER_REQUESTS = _Family("bff_provider_requests_total",
                            "Calls to a provider: ok, retry (failed, may be tried again), final (refused for good), "
                            "unknown (sent, fate unknown).", ("provider", "operation", "outcome"))
PROVIDER_DURATION = _Family("bff_provider_request_duration_seconds", "Time a provider call took.",
                            ("provider", "operation"), PROVIDER_SECONDS)
POLL_CYCLE_DURATION = _Family("bff_poll_cycle_duration_seconds", "Time one poll cycle took.", (),
                              POLL_CYCLE_SECONDS)
CREDITS = _Family("bff_credits_total", "Credits reserved, charged and refunded.", ("service", "kind"))
FAMILIES = (HTTP_REQUESTS, HTTP_DURATION, TASKS_CREATED, TASKS_FINISHED, TASK_DURATION, PROVIDER_REQUESTS,
            PROVIDER_DURATION, POLL_CYCLE_DURATION, CREDITS)


@dataclass(frozen=True)
class ScrapeGauges:
    """Values read from their owners at each scrape (the web route gathers them)."""

    tasks: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # bucket -> (waiting, in flight)
    credits_budget: float | None = None  # the service's credit budget for today; None: no budget
    credits_spent_today: float | None = None  # credits the service has spent today


# One pending change to a field of a metric's hash: (metric name, field, amount). An int
# amount is an HINCRBY, a float an HINCRBYFLOAT (a field always gets the same type, or
# Redis refuses the HINCRBY).
_Increment = tuple[str, str, int | float]


class _FailureLog:
    """Warns at most once per interval: an outage, or a caller's bug, must not flood the logs."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._last: float | None = None

    def warn(self, message: str, *args) -> None:
        now = time.monotonic()
        if self._last is None or now - self._last >= self._interval:
            self._last = now
            log.warning(message, *args)


_rejected_labels = _FailureLog(FAILURE_LOG_INTERVAL_SECONDS)


class _ProcessBuffer:
    """This process's HTTP counts not yet in Redis, and the thread that flushes them."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.pending: dict[tuple[str, str], int | float] = {}
        self.stopped = threading.Event()
        self.flusher: threading.Thread | None = None

    def add(self, increments: Iterable[_Increment]) -> None:
        with self.lock:
            for name, field_, amount in increments:
                self.pending[name, field_] = self.pending.get((name, field_), 0) + amount

    def take(self) -> list[_Increment]:
        with self.lock:
            taken, self.pending = self.pending, {}
        return [(name, field_, amount) for (name, field_), amount in taken.items()]


class Metrics:
    """Records the BFF's metrics in Redis and renders them for a Prometheus scrape.

    ``queues``: the Dramatiq queues whose lengths a scrape reports. One instance per
    process, shared by its threads.
    """

    def __init__(self, redis_client: redis.Redis, *, queues: Sequence[str] = (),
                 flush_interval_seconds: float = FLUSH_INTERVAL_SECONDS) -> None:
        self._redis = redis_client
        self._queues = tuple(queues)
        self._flush_interval = flush_interval_seconds
        self._buffer = _ProcessBuffer()
        self._failures = _FailureLog(FAILURE_LOG_INTERVAL_SECONDS)

    # --- recording ---------------------------------------------------------------------

    def http_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the endpoint name (``request.endpoint``), None
        when no rule matched; never the path. Buffered: no Redis call on the request's path."""
        route_ = UNMATCHED_ROUTE if route is None else _label(route, pattern=_ROUTE)
        method_ = _label(method.upper(), HTTP_METHODS)
        status_ = str(status) if 100 <= status <= 599 else OTHER
        self._flushed_buffer().add([_count(HTTP_REQUESTS, (route_, method_, status_)),
                                    *_observe(HTTP_DURATION, (route_,), seconds)])

    @staticmethod
    def task_created_commands(task: Task) -> list[list]:
        """The write that counts a new task, for the script that records it."""
        name, field_, amount = _count(TASKS_CREATED, (_label(task.service, SERVICES), _label(task.kind, KINDS)))
        return [["HINCRBY", metric_key(name), field_, amount]]

    def task_finished(self, task: Task, *, pipe: redis.client.Pipeline) -> None:
        """Count a task that just ended, in the transaction that makes it terminal: a
        transaction retried after a conflict discards the count with the rest, so each
        task is counted once however often its messages are delivered."""
        service, kind = _label(task.service, SERVICES), _label(task.kind, KINDS)
        status = _label(task.status, TERMINAL_STATUSES)
        error_code = "" if status == COMPLETED else _label(task.error.code if task.error else "", ERROR_CODES)
        self._queue_on(pipe, [_count(TASKS_FINISHED, (service, kind, status, error_code)),
                              *_observe(TASK_DURATION, (service, kind), task.updated_at - task.created_at)])

    def provider_request(self, provider: str, operation: str, outcome: str, seconds: float) -> None:
        """One call to a provider: a ``bff.providers.calls.CallObserver``."""
        provider_, operation_ = _label(provider, SERVICES), _label(operation, OPERATIONS)
        self._send([_count(PROVIDER_REQUESTS, (provider_, operation_, _label(outcome, PROVIDER_OUTCOMES))),
                    *_observe(PROVIDER_DURATION, (provider_, operation_), seconds)])

    def poll_cycle(self, seconds: float) -> None:
        self._send(_observe(POLL_CYCLE_DURATION, (), seconds))

    def credits(self, service: str, kind: str, amount: float, *, pipe: redis.client.Pipeline | None = None) -> None:
        """Credits ``reserved``, ``charged`` or ``refunded`` for a task of ``service``. Pass the
        pipeline of the transaction that moves the credits, so they are counted exactly
        when (and as often as) it commits."""
        increments = [_count(CREDITS, (_label(service, SERVICES), _label(kind, CREDIT_KINDS)), float(amount))]
        if pipe is None:
            self._send(increments)
        else:
            self._queue_on(pipe, increments)

    @staticmethod
    def credits_commands(service: str, kind: str, amount: float) -> list[list]:
        """The write that counts credits ``reserved``, ``charged`` or ``refunded``, for a
        script that moves them (it runs the write exactly when they move)."""
        name, field_, amount_ = _count(CREDITS, (_label(service, SERVICES), _label(kind, CREDIT_KINDS)), float(amount))
        return [["HINCRBYFLOAT", metric_key(name), field_, amount_]]

    def _queue_on(self, pipe: redis.client.Pipeline, increments: list[_Increment]) -> None:
        """Queue the increments on the caller's transaction (it executes them)."""
        if pipe.watching and not pipe.explicit_transaction:
            # Before multi() a watched pipeline runs commands at once: they would escape
            # the transaction and count again each time it is retried.
            raise ValueError("call pipe.multi() before adding metrics to a watched pipeline")
        self._queue(pipe, increments)

    # --- flushing ----------------------------------------------------------------------

    def flush(self) -> None:
        """Send this process's buffered HTTP counts now (the flusher does it every second)."""
        self._send(self._process_buffer().take())

    def close(self) -> None:
        """Stop the flusher and flush: call on shutdown (gunicorn's ``worker_exit`` hook does)."""
        buffer = self._process_buffer()
        buffer.stopped.set()
        if buffer.flusher is not None:
            buffer.flusher.join(timeout=self._flush_interval * 2)
        self.flush()

    def _process_buffer(self) -> _ProcessBuffer:
        """This process's buffer. After a fork (gunicorn --preload, multiprocessing) the
        parent's pending counts and thread stay with the parent: the child starts afresh
        rather than send them a second time."""
        if self._buffer.pid != os.getpid():
            self._buffer = _ProcessBuffer()
        return self._buffer

    def _flushed_buffer(self) -> _ProcessBuffer:
        """This process's buffer, with its flusher started on first use."""
        buffer = self._process_buffer()
        if buffer.flusher is None:
            with buffer.lock:
                if buffer.flusher is None:
                    buffer.flusher = threading.Thread(target=self._flush_every_interval, args=(buffer,),
                                                      name="metrics-flusher", daemon=True)
                    buffer.flusher.start()
        return buffer

    def _flush_every_interval(self, buffer: _ProcessBuffer) -> None:
        while not buffer.stopped.wait(self._flush_interval):
            self._send(buffer.take())

    def _send(self, increments: list[_Increment]) -> None:
        if not increments:
            return
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                self._queue(pipe, increments)
                pipe.execute()
        except redis.RedisError as error:
            self._failures.warn("metrics: %d counts dropped, Redis failed: %s", len(increments), type(error).__name__)

    @staticmethod
    def _queue(pipe: redis.client.Pipeline, increments: Iterable[_Increment]) -> None:
        for name, field_, amount in increments:
            if isinstance(amount, float):
                pipe.hincrbyfloat(metric_key(name), field_, amount)
            else:
                pipe.hincrby(metric_key(name), field_, amount)

    # --- scraping ----------------------------------------------------------------------

    def render(self, gauges: ScrapeGauges | None = None) -> tuple[bytes, str]:
        """The exposition text and its content type. One Redis round trip: this process's
        pending counts, every metric's hash and the queue lengths. Raises on a Redis error
        (answer the scrape with a 503: Prometheus then records the target as down)."""
        families = self._read_redis()
        if gauges is not None:
            families.extend(_scrape_gauges(gauges))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(families))
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def _read_redis(self) -> list[Metric]:
        # A transaction: the queue figures come from one instant (fetched = unacked - ready).
        with self._redis.pipeline(transaction=True) as pipe:
            pending = self._process_buffer().take()
            self._queue(pipe, pending)
            for family in FAMILIES:
                pipe.hgetall(metric_key(family.name))
            for queue in self._queues:
                pipe.llen(dramatiq_key(queue))  # ids not yet fetched by a worker
                pipe.hlen(dramatiq_key(queue, ".msgs"))  # every message not yet acked (ready, prefetched, running)
                pipe.hlen(dramatiq_key(queue, ".DQ.msgs"))  # delayed messages (eta in the future)
                pipe.zcard(dramatiq_key(queue, ".XQ"))  # dead-lettered messages, kept a week
            replies = pipe.execute()[len(pending):]
        hashes, queue_replies = replies[:len(FAMILIES)], replies[len(FAMILIES):]
        families = [_family_from_hash(family, fields) for family, fields in zip(FAMILIES, hashes, strict=True)]
        families.extend(_queue_gauges(self._queues, queue_replies))
        return families


class _Families:
    """A prometheus_client collector over metrics already read."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


# --- encoding --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _label(value: str, allowed: frozenset[str] = frozenset(), *, pattern: re.Pattern[str] | None = None) -> str:
    if value in allowed or (pattern is not None and pattern.fullmatch(value)):
        return str(value)
    # The value itself is not logged: it may be a URL or a prompt. The series labelled
    # "other" shows which label got it.
    _rejected_labels.warn("metrics: a label value that is not an allowed one was counted as %r", OTHER)
    return OTHER


@functools.lru_cache(maxsize=4096)  # label values are bounded: the same few fields come back
def _field(values: tuple[str, ...]) -> str:
    return json.dumps(values, separators=(",", ":"))


def _count(family: _Family, labels: tuple[str, ...], amount: int | float = 1) -> _Increment:
    return family.name, _field(labels), amount


def _observe(family: _Family, labels: tuple[str, ...], seconds: float) -> list[_Increment]:
    seconds = max(0.0, seconds)  # clocks of two hosts may disagree a little
    bound = family.bound_labels[bisect.bisect_left(family.buckets, seconds)]
    return [(family.name, _field((*labels, bound)), 1), (family.name, _field((*labels, "sum")), float(seconds))]


def _family_from_hash(family: _Family, fields: Mapping[bytes | str, bytes | str]) -> Metric:
    decoded = [(tuple(json.loads(key)), float(value)) for key, value in fields.items()]
    if not family.buckets:
        counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
        for labels, value in sorted(decoded):
            if len(labels) == len(family.labels):  # fields of an older label set are left out
                counter.add_metric(labels, value)
        return counter
    return _histogram(family, decoded)


def _histogram(family: _Family, decoded: list[tuple[tuple[str, ...], float]]) -> HistogramMetricFamily:
    counts: dict[tuple[str, ...], list[float]] = {}
    sums: dict[tuple[str, ...], float] = {}
    for values, value in decoded:
        labels, part = values[:-1], values[-1]
        if len(labels) != len(family.labels):
            continue
        if part == "sum":
            sums[labels] = value
        else:
            # A bound of an older bucket layout goes into the next bound up: still correct
            # for every bound at or above it.
            index = bisect.bisect_left(family.buckets, float(part))
            counts.setdefault(labels, [0.0] * (len(family.buckets) + 1))[index] += value
    histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
    for labels in sorted(counts):
        cumulative, buckets = 0.0, []
        for bound, count in zip(family.bound_labels, counts[labels], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        histogram.add_metric(labels, buckets, sums.get(labels, 0.0))
    return histogram


def _queue_gauges(queues: Sequence[str], replies: list[int]) -> list[Metric]:
    messages = GaugeMetricFamily("bff_queue_messages",
                                 "Dramatiq messages not yet done: ready (not fetched by a worker), fetched "
                                 "(prefetched or running), delayed (due later).", labels=("queue", "state"))
    dead = GaugeMetricFamily("bff_queue_dead_messages", "Dramatiq messages dead-lettered (kept a week).",
                             labels=("queue",))
    for position, queue in enumerate(queues):
        ready, unacked, delayed, dead_letters = replies[position * 4:position * 4 + 4]
        for state, value in zip(QUEUE_STATES, (ready, max(0, unacked - ready), delayed), strict=True):
            messages.add_metric((queue, state), value)
        dead.add_metric((queue,), dead_letters)
    return [messages, dead]


def _scrape_gauges(values: ScrapeGauges) -> list[Metric]:
    waiting = GaugeMetricFamily("bff_tasks_waiting", "Tasks waiting for provider capacity.", labels=("bucket",))
    in_flight = GaugeMetricFamily("bff_tasks_in_flight", "Provider capacity in use: Tripo tasks in flight, "
                                  "OpenAI edits started in the current window.", labels=("bucket",))
    for bucket, (waiting_count, in_flight_count) in sorted(values.tasks.items()):
        bucket_ = _label(bucket, BUCKETS)
        waiting.add_metric((bucket_,), waiting_count)
        in_flight.add_metric((bucket_,), in_flight_count)
    families: list[Metric] = [waiting, in_flight]
    for name, help_, value in (
        ("bff_credits_service_budget", "The service's credit budget for today.", values.credits_budget),
        ("bff_credits_spent_today", "Credits the service has spent or holds for tasks in flight today (UTC).",
         values.credits_spent_today),
    ):
        if value is not None:
            families.append(GaugeMetricFamily(name, help_, value=value))
    return families
