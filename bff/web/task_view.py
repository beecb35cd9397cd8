"""The BFF's own links, absolute under the scheme and host of the request (the paths
themselves are ``bff.tasks.status_view``'s, which renders the status body)."""

from __future__ import annotations

import functools

from flask import request
from werkzeug.sansio.utils import get_current_url
from werkzeug.wsgi import get_host

from bff.tasks.record import Task
from bff.tasks.status_view import status_path


def base_url(environ: dict | None = None) -> str:
    """Scheme, host and script root of the request (this one, or the one of ``environ``)
    as url_for(_external=True) builds them: werkzeug's host_url, validated the same way."""
    environ = request.environ if environ is None else environ
    return _base_url(environ["wsgi.url_scheme"], environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
                     environ.get("SERVER_PORT"), environ.get("SCRIPT_NAME", ""))


@functools.lru_cache(maxsize=256)  # a service answers under a few names: parsed once each
def _base_url(scheme: str, host: str | None, server_name: str | None, server_port: str | None,
              script_name: str) -> str:
    environ = {"wsgi.url_scheme": scheme, "SERVER_NAME": server_name, "SERVER_PORT": server_port}
    if host is not None:
        environ["HTTP_HOST"] = host
    host_url = get_current_url(scheme, get_host(environ))
    return host_url[:-1] + script_name.rstrip("/")


def status_url(task: Task, environ: dict | None = None) -> str:
    """The task's status link under this request's host (or the one of ``environ``)."""
    return base_url(environ) + status_path(task)
