"""The BFF's own links, absolute under the scheme and host of the request (the paths
themselves are ``bff.tasks.status_view``'s, which renders the status body)."""

from __future__ import annotations

from flask import request
from werkzeug.sansio.utils import get_current_url
from werkzeug.wsgi import get_host

from bff.tasks.record import Task
from bff.tasks.status_view import status_path


def base_url(environ: dict | None = None) -> str:
    """Scheme, host and script root of the request (this one, or the one of ``environ``)
    as url_for(_external=True) builds them: werkzeug's host_url, validated the same way."""
    environ = request.environ if environ is None else environ
    host_url = get_current_url(environ["wsgi.url_scheme"], get_host(environ))
    return host_url[:-1] + environ.get("SCRIPT_NAME", "").rstrip("/")


def status_url(task: Task) -> str:
    return base_url() + status_path(task)
