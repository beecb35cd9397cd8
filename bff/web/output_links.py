"""Stable result links over short-lived provider URLs.

Tripo's signed output URLs expire about five minutes after they are issued. The status
body hands out BFF links instead; following one redirects to a provider URL that is
still good. When the cached URL is too old, a worker reads the task from Tripo again
(requests never call a provider) and this waits briefly for it.
"""

from __future__ import annotations

import time

from bff.tasks.record import Task
from bff.tasks.services import Services

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
