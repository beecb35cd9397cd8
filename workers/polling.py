"""One poll cycle: reconcile open tasks, then refresh the tasks still running at Tripo.

Provider calls are bounded by the number of active tasks: one ``POST /tasks/list`` per
100 tasks submitted to Tripo and not yet seen terminal; nothing for pending, finished
or OpenAI tasks.
"""

from __future__ import annotations

import logging

from bff.error_codes import task_error
from bff.logs import task_context
from bff.providers.errors import ProviderError
from bff.providers.tripo import BATCH_READ_LIMIT
from bff.status_mapping import MODEL, PREVIEW, TripoSnapshot, output_urls, snapshot_from_tripo
from bff.task import COMPLETED, PROCESSING, Task

from . import runtime
from .reconcile import reconcile_open_tasks

log = logging.getLogger(__name__)


def poll_cycle() -> None:
    # Refresh first: tasks it sees finish free capacity that reconciliation then hands on.
    refresh_tripo_tasks()
    reconcile_open_tasks()


def refresh_tripo_tasks() -> None:
    store = runtime.current().services.store
    ids = store.polling_task_ids("tripo")
    for start in range(0, len(ids), BATCH_READ_LIMIT):
        tasks = store.get_many(ids[start : start + BATCH_READ_LIMIT])
        try:
            _refresh_batch({task.provider_task_id: task for task in tasks if task.provider_task_id})
        except Exception:
            # One bad batch must not stop the others (or the next cycle).
            log.exception("could not refresh a batch of tripo tasks")


def _refresh_batch(by_provider_id: dict[str, Task]) -> None:
    if not by_provider_id:
        return
    worker_runtime = runtime.current()
    try:
        provider_tasks, missed = worker_runtime.tripo.get_tasks(list(by_provider_id))
    except ProviderError as error:
        # Reads are free to repeat: the next cycle tries again; the deadline bounds it.
        log.warning("tripo batch read failed", extra={"error_code": error.error_code, "outcome": error.outcome})
        return
    for provider_id, provider_task in provider_tasks.items():
        if provider_id in by_provider_id and isinstance(provider_task, dict):
            apply_tripo_read(by_provider_id[provider_id].id, provider_task)
    for provider_id in missed:
        if provider_id in by_provider_id:
            worker_runtime.services.store.update(
                by_provider_id[provider_id].id, lambda task: task.failed(task_error("provider_task_lost"))
            )


def apply_tripo_read(task_id: str, provider_task: dict) -> None:
    """Write what one Tripo read says into the task record, and cache its output URLs."""
    worker_runtime = runtime.current()
    snapshot = snapshot_from_tripo(provider_task)
    if snapshot.status == COMPLETED:
        cache_output_urls(task_id, provider_task)
    updated = worker_runtime.services.store.update(task_id, lambda task: _with_snapshot(task, snapshot))
    if updated and updated.is_terminal:
        with task_context(updated.id, updated.request_id):
            log.info("task ended", extra={"status": updated.status})


def cache_output_urls(task_id: str, provider_task: dict) -> None:
    worker_runtime = runtime.current()
    model_url, preview_url = output_urls(provider_task)
    urls = {name: url for name, url in ((MODEL, model_url), (PREVIEW, preview_url)) if url}
    if urls:
        worker_runtime.services.store.cache_output_urls(task_id, urls, worker_runtime.settings.tripo_url_cache_seconds)


def _with_snapshot(task: Task, snapshot: TripoSnapshot) -> Task | None:
    progress = max(task.progress, snapshot.progress) if snapshot.status == PROCESSING else snapshot.progress
    changes = {
        "status": snapshot.status,
        "progress": progress,
        "outputs": snapshot.outputs or task.outputs,
        "error": snapshot.error,
        "provider_error_code": snapshot.provider_error_code,
    }
    if all(getattr(task, name) == value for name, value in changes.items()):
        return None
    return task.evolve(**changes)
