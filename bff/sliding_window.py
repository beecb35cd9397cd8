"""The sliding window that counts requests against a per-client limit, as Lua to run inside
a script of its own (a status read, a task's create) or alone (``bff.web.rate_limits``,
which owns the limits, their keys and their refusals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class WindowCheck:
    """One request to count: ``sliding_window``'s keys (previous, current) and arguments
    (limit, window in ms)."""

    keys: list[str]
    args: list[Any]
