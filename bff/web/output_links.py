"""Stable result links over short-lived provider URLs.

Tripo's signed output URLs expire about five minutes after they are issued. The status
body hands out BFF links instead; following one redirects to a provider URL that is
still good. When the cached URL is too old, a worker reads the task from Tripo again
(requests never call a provider) and this waits briefly for it. With object storage
configured, the links redirect to the bucket instead (``bff.results.task_files``), and
``signed_links`` gives an app those links in the status body itself.
"""

from __future__ import annotations

import time

from bff.results.object_store import ObjectStore
from bff.results.task_files import signed_link
from bff.tasks.record import COMPLETED, IMAGES, MODEL, PREVIEW, Task
from bff.tasks.services import Services
from bff.tasks.status_view import iso8601

REFRESH_WAIT_SECONDS = 5.0  # a worker answers in well under a second; a web thread waits no longer
_REFRESH_CHECK_SECONDS = 0.2


def fresh_output_url(app_services: Services, task: Task, which: str) -> str | None:
    """A currently valid provider URL for the task's ``which`` output, or None if the
    workers could not get one within ``REFRESH_WAIT_SECONDS``."""
    url = app_services.store.cached_output_urls(task.id).get(which)
    if url:
        return url
    if app_services.store.claim_url_refresh(task.id, REFRESH_WAIT_SECONDS):
        app_services.queue.refresh_output_urls(task.id, task.request_id)
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_REFRESH_CHECK_SECONDS)
        url = app_services.store.cached_output_urls(task.id).get(which)
        if url:
            return url
    return None


def signed_links(objects: ObjectStore | None, task: Task) -> dict:
    """Direct links into the bucket for a completed task's files, for the status body
    (``?include=signed_urls``): in the order of ``result_urls``, valid until the time given.
    Nothing without object storage, or for a task whose files are not in the bucket."""
    keys = task.object_keys
    if objects is None or task.status != COMPLETED or not ({IMAGES, MODEL} & set(keys)):
        return {}
    results = keys[IMAGES] if IMAGES in keys else [keys[MODEL]]
    return {
        "signed_result_urls": [objects.signed_url(key) for key in results],
        # Only a preview the task kept: its key is chosen before the file is stored.
        "signed_preview_url": signed_link(objects, task, PREVIEW) if PREVIEW in task.outputs else None,
        "signed_urls_expire_at": iso8601(time.time() + objects.link_seconds),
    }
