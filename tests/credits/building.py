"""Credits and a task store wired together as bff.tasks.services wires them, with a test clock."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from bff.credits.book import ADMISSION_CHECK, CreditBook
from bff.credits.credits import Credits
from bff.metrics import Metrics
from bff.settings import Settings
from bff.tasks.record import Kind, Service, Task
from bff.tasks.store import TaskStore

USER = "alice"
TEXTURED = 20  # a textured text-to-model, at Tripo's published price


def credits_for(redis_client, *, clock: Callable[[], float] = time.time, ledger_days: int = 90,
                **settings_changes) -> Credits:
    settings = dataclasses.replace(Settings.from_env(), **settings_changes)
    book = CreditBook(redis_client, ledger_days=ledger_days, metrics=Metrics(redis_client), clock=clock)
    return Credits(settings, book)


def store_with(redis_client, credits: Credits) -> TaskStore:
    return TaskStore(redis_client, retention_seconds=600, open_ttl_seconds=3600, admission_check=ADMISSION_CHECK,
                     end_commands=credits.end_commands)


def text_task(user: str = USER, *, texture: bool = True) -> Task:
    return Task.new(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL, request_id="req",
                    params={"prompt": "a fox", "style": None, "texture": texture}, client=user)


def accept(store: TaskStore, credits: Credits, task: Task, claims: dict | None = None) -> Task:
    """Record ``task`` as intake does, reserving its price; raises CreateRefused when refused."""
    reserved, admission = credits.reserve(task, claims)
    store.create(reserved, admission=admission)
    return reserved
