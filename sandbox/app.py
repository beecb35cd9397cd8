"""All provider stand-ins behind one port, each under its own prefix.

The BFF's sandbox-mode defaults point here: Tripo at ``/tripo/v3``. The stand-ins
build their output URLs from the request's root, so they stay correct under a prefix.
"""

from __future__ import annotations

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .tripo import create_tripo_app

TRIPO_PREFIX = "/tripo"


def create_sandbox_app(*, tripo_api_key: str, task_seconds: float = 20.0, url_ttl_seconds: float = 300.0):
    tripo = create_tripo_app(api_key=tripo_api_key, task_seconds=task_seconds, url_ttl_seconds=url_ttl_seconds)
    return DispatcherMiddleware(NotFound(), {TRIPO_PREFIX: tripo})
