"""The BFF's own links, absolute under the scheme and host of the request (the paths
themselves are ``bff.tasks.status_view``'s, which renders the status body)."""

from __future__ import annotations

from flask import request

from bff.tasks.record import Task
from bff.tasks.status_view import status_path


def base_url() -> str:
    """Scheme, host and script root of this request, as url_for(_external=True) builds them."""
    return request.host_url[:-1] + request.script_root


def status_url(task: Task) -> str:
    return base_url() + status_path(task)
