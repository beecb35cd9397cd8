"""All provider stand-ins behind one port, each under its own prefix.

The BFF's sandbox-mode defaults point here: Tripo at ``/tripo/v3``, OpenAI at
``/openai/v1``, the sign-in issuer (sandbox/identity.py) at ``/auth``. The stand-ins
build their URLs (output files, the issuer) from the request's root, so they stay correct
under a prefix.
"""

from __future__ import annotations

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .identity import create_identity_app
from .openai import SANDBOX_API_KEY, create_openai_app
from .tripo import create_tripo_app

TRIPO_PREFIX = "/tripo"
OPENAI_PREFIX = "/openai"
IDENTITY_PREFIX = "/auth"
# Real edits take 20..60 s; a short wait still lets a frontend show its progress state.
OPENAI_LATENCY_SECONDS = 2.0


def create_sandbox_app(*, tripo_api_key: str, openai_api_key: str = SANDBOX_API_KEY,
                       task_seconds: float = 20.0, url_ttl_seconds: float = 300.0,
                       openai_latency_seconds: float = OPENAI_LATENCY_SECONDS):
    tripo = create_tripo_app(api_key=tripo_api_key, task_seconds=task_seconds,
                             url_ttl_seconds=url_ttl_seconds)
    openai = create_openai_app(api_key=openai_api_key, latency_seconds=openai_latency_seconds)
    return DispatcherMiddleware(NotFound(), {TRIPO_PREFIX: tripo, OPENAI_PREFIX: openai,
                                             IDENTITY_PREFIX: create_identity_app()})
