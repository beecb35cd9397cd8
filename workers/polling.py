"""One poll cycle: refresh the tasks still running at Tripo, then reconcile open tasks.

Provider calls are bounded by the number of active tasks: one ``POST /tasks/list`` per
100 tasks submitted to Tripo and not yet seen terminal; nothing for pending, finished
or OpenAI tasks.
"""

from __future__ import annotations

import logging
import time

from bff.logs import task_context
from bff.providers.errors import ProviderError
from bff.providers.tripo import BATCH_READ_LIMIT
from bff.providers.tripo_status import TripoSnapshot, snapshot_from_tripo
from bff.tasks import lifecycle
from bff.tasks.record import COMPLETED, STORING, Service, Task

from .reconcile import reconcile_open_tasks
from .runtime import WorkerRuntime
from .storing import keys_for_read

log = logging.getLogger(__name__)


def poll_cycle(runtime: WorkerRuntime) -> None:
    started = time.perf_counter()
    # Refresh first: tasks it sees finish free capacity that reconciliation then hands on.
    refresh_tripo_tasks(runtime)
    reconcile_open_tasks(runtime)
    runtime.metrics.poll_cycle(time.perf_counter() - started)


def refresh_tripo_tasks(runtime: WorkerRuntime) -> None:
    ids = runtime.store.polling_task_ids(Service.TRIPO)
    for start in range(0, len(ids), BATCH_READ_LIMIT):
        tasks = runtime.store.get_many(ids[start : start + BATCH_READ_LIMIT])
        try:
            _refresh_batch(runtime, {task.provider_task_id: task for task in tasks if task.provider_task_id})
        except Exception:
            # One bad batch must not stop the others (or the next cycle).
            log.exception("could not refresh a batch of tripo tasks")


def _refresh_batch(runtime: WorkerRuntime, by_provider_id: dict[str, Task]) -> None:
    if not by_provider_id:
        return
    try:
        provider_tasks, missed = runtime.tripo.get_tasks(list(by_provider_id))
    except ProviderError as error:
        # Reads are free to repeat: the next cycle tries again; the deadline bounds it.
        log.warning("tripo batch read failed", extra={"error_code": error.error_code, "outcome": error.outcome})
        return
    for provider_id, provider_task in provider_tasks.items():
        if provider_id in by_provider_id and isinstance(provider_task, dict):
            apply_tripo_read(runtime, by_provider_id[provider_id].id, snapshot_from_tripo(provider_task))
    for provider_id in missed:
        if provider_id in by_provider_id:
            runtime.store.update(by_provider_id[provider_id].id, lifecycle.provider_lost)


def apply_tripo_read(runtime: WorkerRuntime, task_id: str, snapshot: TripoSnapshot) -> None:
    """Write what one Tripo read says into the task record, and cache its output URLs.
    With object storage, a completed read hands the task to a worker to store its files."""
    if snapshot.status == COMPLETED:
        cache_output_urls(runtime, task_id, snapshot)
    keys, now = keys_for_read(runtime, task_id, snapshot), time.time()
    updated = runtime.store.update(task_id, lambda task: lifecycle.settle_from_read(task, snapshot, now=now,
                                                                                    object_keys=keys))
    if updated and updated.is_terminal:
        with task_context(updated.id, updated.request_id):
            log.info("task ended", extra={"status": updated.status})
    elif updated and updated.submission == STORING:
        runtime.queue.store_results(task_id, updated.request_id)


def cache_output_urls(runtime: WorkerRuntime, task_id: str, snapshot: TripoSnapshot) -> None:
    if snapshot.urls:
        runtime.store.cache_output_urls(task_id, snapshot.urls, runtime.settings.tripo_url_cache_seconds)
