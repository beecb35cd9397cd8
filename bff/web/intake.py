"""Accepting a generation request: the one intake function.

``accept`` validates what the schemas cannot (the model a refine or a conversion works
on), applies the Idempotency-Key, records the task (counting the request in its limit
and reserving its price in credits in the same script, when given and enabled: a
refusal records nothing) and nudges a worker; a conversion the model already has (same format and options, not failed)
answers instead of a new one. The request never calls a provider. The record is
written before the message is sent, so a worker never receives a message for a task
that does not exist. Once the record is written the client gets its 202, whatever
happens to the message: reconciliation sends a task whose message never left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bff.credits.book import CREDITS_EXHAUSTED, SERVICE_BUDGET_EXHAUSTED
from bff.providers.tripo_requests import conversion_options
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.results.task_files import discard_kept_upload, keep_upload
from bff.tasks import conversions
from bff.tasks.record import COMPLETED, Kind, Service, Task, Upload
from bff.tasks.services import Services
from bff.tasks.store import Admission, CreateRefused, KeyTaken, OverRequestLimit, Remembered, TransactionContention

from . import idempotency
from .rate_limits import Family
from .refusals import CreditsExhausted, Refusal, ServiceBudgetExhausted, TaskNotFound, TaskNotReady
from .unsettled import UnsettledCreates

log = logging.getLogger(__name__)

# A request starts another attempt to learn whether its create ran only this soon after
# the create began: an attempt against a hung Redis takes up to about 1.1 s (two socket
# timeouts), and the service promises a 503 within 2 s.
RESOLVE_WITHIN_SECONDS = 0.7
_RESOLVE_PAUSE_SECONDS = 0.1


@dataclass(frozen=True)
class Caller:
    """Who asks, and for which request: what intake needs from the HTTP layer."""

    client: str
    request_id: str
    endpoint: str
    idempotency_key: str | None
    # The verified sign-in token's claims (read-only), or None without user sign-in.
    claims: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Accepted:
    body: dict
    location: str
    replayed: bool = False
    reused: bool = False  # an earlier task answers: nothing new was made


def accept(
    services: Services, caller: Caller, *, service: Service, kind: Kind, args: dict,
    status_url: Callable[[Task], str], unsettled: UnsettledCreates, upload: Upload | None = None,
    counted_in: Family | None = None,
) -> Accepted:
    """Accept a task made of the request's ``args``, or replay the answer to an earlier
    request with the same Idempotency-Key. The request is counted against ``counted_in``
    by the script that records the task (None: the route counted it already)."""
    claim = idempotency.claim_for(caller, args, upload)
    if claim is not None and upload is not None and services.objects is not None:
        # A replay need not put its upload in the bucket first (nor fail while the bucket is down).
        held = services.redis.get(claim.redis_key)
        if held is not None:
            return _replayed(claim, held)
    try:
        params = _params(services, caller, kind, args)
    except Refusal:
        # The model a refine or conversion named may be gone by the time its retry comes:
        # the key's answer still stands.
        held = services.redis.get(claim.redis_key) if claim else None
        if claim is None or held is None:
            raise
        return _replayed(claim, held)
    task = Task.new(service=service, kind=kind, params=params, request_id=caller.request_id, client=caller.client)
    task, admission = services.credits.reserve(task, caller.claims)
    task, upload = keep_upload(services.objects, task, upload)  # with storage: in the bucket, not Redis
    accepted = Accepted(accepted_body(task, status_url(task)), status_url(task))
    remember = idempotency.answer_to_remember(claim, accepted.body, accepted.location) if claim else None
    try:
        earlier = _record(services, caller, task, upload, remember, claim, unsettled, admission, counted_in)
    except KeyTaken as taken:
        discard_kept_upload(services.objects, task)  # recorded nowhere: no task will read it
        assert claim is not None  # only a key to remember can be taken
        return _replayed(claim, taken.held)
    except Refusal:
        discard_kept_upload(services.objects, task)
        raise
    if earlier is not None:
        # Nothing new to remember: a retry with the key finds the same conversion again.
        return Accepted(accepted_body(earlier, status_url(earlier)), status_url(earlier), reused=True)
    try:
        services.queue.submit(task.id, task.request_id)
    except REDIS_UNAVAILABLE_ERRORS:
        log.warning("could not enqueue the new task; reconciliation will send it", extra={"new_task": task.id})
    return accepted


def _replayed(claim: idempotency.Claim, held: bytes | str) -> Accepted:
    answer = idempotency.replay(claim, held)
    return Accepted(answer["body"], answer["location"], replayed=True)


def _record(services: Services, caller: Caller, task: Task, upload: Upload | None, remember: Remembered | None,
            claim: idempotency.Claim | None, unsettled: UnsettledCreates, admission: Admission | None,
            counted_in: Family | None) -> Task | None:
    """Record the task (for a conversion the model already has, return that one instead),
    or raise with the outcome settled: a refusal, or ``KeyTaken``, when nothing was
    written; a create whose reply was lost may have run, so it is never taken as failed
    until Redis says so (the task then is void and can never be recorded); when Redis
    cannot say in time, the task is settled in the background and never sent, since the
    client is told the request failed."""
    started = time.monotonic()
    window = counted_in.window_check(services.settings, caller.client) if counted_in else None
    try:
        if task.kind == Kind.CONVERT_MODEL:
            return services.store.create_conversion(task, remember, admission, window)
        services.store.create(task, upload, remember, admission, window)
        return None
    except OverRequestLimit as refused:
        assert counted_in is not None  # only a window refuses
        raise counted_in.refusal(services.settings, refused.window) from None
    except CreateRefused as refused:
        raise _out_of_credits(refused.reason, services.credits.seconds_until_reset()) from None
    except (*REDIS_UNAVAILABLE_ERRORS, TransactionContention) as error:
        # Contention too: a conversion's transaction whose last EXEC's reply was lost may have run.
        lost = error
    while time.monotonic() - started < RESOLVE_WITHIN_SECONDS:
        try:
            recorded = services.store.resolve_create(task)
        except REDIS_UNAVAILABLE_ERRORS:
            time.sleep(_RESOLVE_PAUSE_SECONDS)
            continue
        if recorded:
            log.warning("a create whose reply was lost had run; accepted", extra={"new_task": task.id})
            return None
        discard_kept_upload(services.objects, task)
        raise lost
    unsettled.settle_later(task, claim)
    raise lost


def _out_of_credits(reason: str, retry_after: int) -> Refusal:
    if reason == CREDITS_EXHAUSTED:
        return CreditsExhausted("Your credits for today are used up; they renew at midnight UTC.",
                                retry_after=retry_after)
    if reason == SERVICE_BUDGET_EXHAUSTED:
        return ServiceBudgetExhausted("The service has used up its credits for today; it resumes at midnight UTC.",
                                      retry_after=retry_after)
    raise ValueError(f"unknown admission refusal {reason!r}")


def accepted_body(task: Task, status_url: str) -> dict:
    return {"task_id": task.id, "service": task.service, "status": task.status, "status_url": status_url}


def owned_task(services: Services, client: str, task_id: str) -> Task | None:
    """The task if it exists and belongs to ``client``; another client's task is treated
    as unknown, so ids reveal nothing across clients."""
    task = services.store.get(task_id)
    return task if task is not None and task.client == client else None


def _params(services: Services, caller: Caller, kind: Kind, args: dict) -> dict:
    if kind == Kind.REFINE_MODEL:
        draft = _workable_model(services, caller.client, args["draft_model_task_id"], "draft", "refined")
        return {"draft_model_task_id": draft.id, "draft_provider_task_id": draft.provider_task_id}
    if kind == Kind.CONVERT_MODEL:
        return _convert_params(services, caller.client, args)
    return args


def _convert_params(services: Services, client: str, args: dict) -> dict:
    """The conversion's model, and the format and options it runs with (defaults applied)."""
    model = _workable_model(services, client, args["model_task_id"], "model", "converted")
    options = conversion_options(args["format"], face_limit=args["face_limit"], texture_size=args["texture_size"])
    return {conversions.SOURCE: model.id, conversions.SOURCE_PROVIDER_TASK: model.provider_task_id,
            "format": args["format"], **options}


def _workable_model(services: Services, client: str, task_id: str, called: str, done: str) -> Task:
    """The completed model task that Tripo is asked to work on, or why it cannot be ``done``
    (refined, converted); ``called`` is what the request calls it."""
    model = owned_task(services, client, task_id)
    if model is None:
        raise TaskNotFound(f"No task with id {task_id!r}.")
    if model.kind == Kind.CONVERT_MODEL:
        raise TaskNotReady(f"This task is a conversion; only the model it was made from can be {done}.")
    if not model.is_model:
        raise TaskNotReady(f"Only a 3D model task can be {done}; this task is not one.")
    if model.status != COMPLETED or not model.provider_task_id:
        raise TaskNotReady(f"The {called} is {model.status}; only a completed model can be {done}.")
    return model
