"""Per-client request limits on the API, counted in Redis so they hold across every web
process (flask-limiter, sliding-window counters). The limits themselves are settings,
read on each request.

A request over its limit is a 429 in the API's JSON error shape with ``Retry-After``;
it is rejected before the view runs, so it creates no task.
"""

from __future__ import annotations

import math
import time

import redis
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

from bff.settings import Settings
from bff.web.clients import current_client
from bff.web.errors import error_response
from bff.web.services import services

limiter = Limiter(key_func=current_client, strategy="sliding-window-counter")


def _per_minute(setting: str):
    # A shared limit: one count per client for every route of the family (a plain
    # limit would give each route its own count).
    return limiter.shared_limit(lambda: f"{getattr(services().settings, setting)}/minute", scope=setting)


openai_requests = _per_minute("bff_openai_requests_per_minute")
tripo_refine_requests = _per_minute("bff_tripo_refine_requests_per_minute")
tripo_other_requests = _per_minute("bff_tripo_other_requests_per_minute")
status_requests = _per_minute("bff_status_requests_per_minute")


def init_rate_limits(app: Flask, settings: Settings, client: redis.Redis) -> None:
    """Call after the client is identified in a before_request hook (the key depends on it).
    The counts go through ``client``'s connections: the same timeouts, and the same cap."""
    if settings.embedded_store:
        app.config["RATELIMIT_STORAGE_URI"] = "memory://"  # one process: its memory is the whole store
    else:
        app.config.update(RATELIMIT_STORAGE_URI=settings.redis_url,
                          RATELIMIT_STORAGE_OPTIONS={"connection_pool": client.connection_pool})
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _too_many_requests)


def _too_many_requests(error: RateLimitExceeded):
    window = error.limit.limit.get_expiry()
    current = limiter.current_limit
    # A sliding window's reset is an estimate; never ask for more than one whole window.
    wait = min(window, max(1, math.ceil(current.reset_at - time.time()))) if current else window
    return error_response(429, f"Rate limit of {error.limit.limit} for this client reached; retry after {wait} s.",
                          headers={"Retry-After": str(wait)})
