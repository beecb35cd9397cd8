"""Per-client request limits on the API, counted in Redis so they hold exactly across every
web process. The limits themselves are settings, read on each request.

Each family of routes shares one limit per client, counted as a sliding window of one
minute: the count of the current minute plus the previous minute's count weighted by
how much of it still overlaps the window. This is the `limits` library's
"sliding-window-counter" (which flask-limiter ran here before), with the same keys and
the same arithmetic, so counts carry over a rolling deploy. One Lua script checks and
counts, atomically: one round trip. Where a request makes one Redis call anyway, the
count rides inside it: a status read's script (``bff.web.status_reads``), and the script
that records a new task (``bff.tasks.store``), so a submission is counted, and refused
when over, in the same round trip that records it.

Which routes count where:

- ``counted(family)`` decorates a route: the request is counted (or refused) once its
  input is valid, before the view does anything with it. Routes that do work before
  recording (the upload route checks and stores the image; refine and convert read the
  model) and the read routes count this way, except the status read, which counts inside
  its own script (``bff.web.status_reads``).
- ``family.window_check(...)``, handed to intake, counts the request in the create
  script: the generation routes that record at once (``JSON_GENERATIONS``). An
  Idempotency-Key replay there is not counted: it creates nothing and costs one read.

A request over its limit is refused (``RateLimited``: a 429 with ``Retry-After``) and
creates no task.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import redis
from flask import current_app, g

from bff.settings import Settings
from bff.sliding_window import SLIDING_WINDOW_LUA, WindowCheck

from .refusals import RateLimited
from .services import services

WINDOW_SECONDS = 60

_CHECK = SLIDING_WINDOW_LUA + "return sliding_window(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))"


@dataclass(frozen=True)
class Family:
    """Routes that share one limit per client, set by ``setting`` (requests per minute)."""

    setting: str

    def limit(self, settings: Settings) -> int:
        return getattr(settings, self.setting)

    def window_keys(self, client: str, limit: int) -> list[str]:
        """The previous and current window counters: flask-limiter's keys for a shared limit."""
        current = f"LIMITS:{{LIMITER/{client}/{self.setting}/{limit}/1/minute}}"
        return [f"{current}/-1", current]

    def window_check(self, settings: Settings, client: str) -> WindowCheck:
        """What ``sliding_window`` counts for one request of ``client``."""
        limit = self.limit(settings)
        return WindowCheck(self.window_keys(client, limit), [limit, WINDOW_SECONDS * 1000])

    def refusal(self, settings: Settings, window: list[int]) -> RateLimited:
        """Why a request was not counted, from ``sliding_window``'s answer: when to retry is
        when the weighted count next drops (limits' window stats), never over a window."""
        _, previous_count, previous_ttl_ms, current_count, current_ttl_ms = window
        expiry_ms = WINDOW_SECONDS * 1000
        resets_in_ms = min(previous_ttl_ms % (expiry_ms / previous_count) if previous_count else math.inf,
                           current_ttl_ms % expiry_ms if current_count else math.inf)
        seconds = 0 if math.isinf(resets_in_ms) else math.ceil(resets_in_ms / 1000)
        wait = min(WINDOW_SECONDS, max(1, seconds))
        return RateLimited(f"Rate limit of {self.limit(settings)} per 1 minute for this client reached; "
                           f"retry after {wait} s.", retry_after=wait)


OPENAI = Family("bff_openai_requests_per_minute")
TRIPO_REFINE = Family("bff_tripo_refine_requests_per_minute")
TRIPO_OTHER = Family("bff_tripo_other_requests_per_minute")
STATUS = Family("bff_status_requests_per_minute")


def counted(family: Family) -> Callable[[Callable], Callable]:
    """A view decorator: count the request against ``family`` first, or refuse it."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def counted(*args, **kwargs):
            check_limit(family)
            return view(*args, **kwargs)

        return counted

    return decorate


def check_limit(family: Family) -> None:
    """Count this request of ``g.client`` against ``family``; raises RateLimited when over."""
    app_services = services()
    check = family.window_check(app_services.settings, g.client)
    window = current_app.extensions["bff_rate_limit_script"](keys=check.keys, args=check.args)
    if not window[0]:
        raise family.refusal(app_services.settings, window)


status_requests = counted(STATUS)


def init_rate_limits(app, client: redis.Redis) -> None:
    app.extensions["bff_rate_limit_script"] = client.register_script(_CHECK)

