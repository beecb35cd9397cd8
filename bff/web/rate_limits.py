"""Per-client request limits on the API, counted in Redis so they hold exactly across every
web process. The limits themselves are settings, read on each request.

Each family of routes shares one limit per client, counted as a sliding window of one
minute: the count of the current minute plus the previous minute's count weighted by
how much of it still overlaps the window. This is the `limits` library's
"sliding-window-counter" (which flask-limiter ran here before), with the same keys and
the same arithmetic, so counts carry over a rolling deploy. One Lua script checks and
counts, atomically: one round trip, and a status read does it inside its own script
(``bff.web.status_reads``) at no extra round trip.

A request over its limit is refused (``RateLimited``: a 429 with ``Retry-After``) before
the view does anything, so it creates no task.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import current_app, g

from bff.settings import Settings

from .refusals import RateLimited
from .services import services

WINDOW_SECONDS = 60

# ``sliding_window(previous_key, current_key, limit, expiry_ms)``: counts one request
# unless that would exceed ``limit``. Returns {1 if counted else 0, previous count, its
# ttl in ms, current count, its ttl in ms}. The arithmetic of limits' acquire script: the
# current counter lives for two windows; once it is one window old it becomes the previous.
SLIDING_WINDOW_LUA = """
local function sliding_window(previous_key, current_key, limit, expiry)
  local current_ttl = tonumber(redis.call('pttl', current_key))
  if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', current_key, previous_key)
    redis.call('set', current_key, 0, 'PX', current_ttl + expiry)
  end
  local previous_count = tonumber(redis.call('get', previous_key)) or 0
  local previous_ttl = math.max(0, tonumber(redis.call('pttl', previous_key)))
  local current_count = tonumber(redis.call('get', current_key)) or 0
  current_ttl = math.max(0, tonumber(redis.call('pttl', current_key)))
  if math.floor(previous_count * previous_ttl / expiry) + current_count + 1 > limit then
    return {0, previous_count, previous_ttl, current_count, current_ttl}
  end
  if redis.call('exists', current_key) == 1 then
    redis.call('incrby', current_key, 1)
  else
    redis.call('set', current_key, 1, 'PX', expiry * 2)
  end
  return {1, previous_count, previous_ttl, current_count + 1, current_ttl}
end
"""

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

    def script_arguments(self, settings: Settings, client: str) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of ``sliding_window`` for one request of ``client``."""
        limit = self.limit(settings)
        return self.window_keys(client, limit), [limit, WINDOW_SECONDS * 1000]

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


def _limited(family: Family) -> Callable[[Callable], Callable]:
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
    keys, arguments = family.script_arguments(app_services.settings, g.client)
    window = current_app.extensions["bff_rate_limit_script"](keys=keys, args=arguments)
    if not window[0]:
        raise family.refusal(app_services.settings, window)


openai_requests = _limited(OPENAI)
tripo_refine_requests = _limited(TRIPO_REFINE)
tripo_other_requests = _limited(TRIPO_OTHER)
status_requests = _limited(STATUS)


def init_rate_limits(app, client: redis.Redis) -> None:
    app.extensions["bff_rate_limit_script"] = client.register_script(_CHECK)

