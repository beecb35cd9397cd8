"""A status read in one Redis round trip: the client's request limit, the task's ownership
and its view (``bff.tasks.status_view``), in one Lua script.

The script counts the request against the status family's limit (exactly as every other
route of the family counts it: ``bff.web.rate_limits``), then, if the task's record
exists, checks that its view names this client and service, and returns the view's body
with what changes without the task changing: its place in the capacity queue and its
conversions' entries. A record written without a view (by a
version before views) gets its view rendered and the read runs once more, uncounted.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from bff.settings import Settings
from bff.sliding_window import SLIDING_WINDOW_LUA
from bff.tasks import status_view
from bff.tasks.store import TASK_KEY_PREFIX, TaskStore, task_key, view_key

from .rate_limits import STATUS
from .refusals import TaskNotFound

# KEYS: record, view, conversions index[, previous window, current window]
# ARGV: task id, client, service, task key prefix, "1" to take a record without a view
#       as none[, limit, window in ms]
# Answers {"limited", window} | {"missing"} | {"unrendered", ids} |
#         {"ok", body, queue rank or nil, {created_at, entry, ...} or nil}
_READ = SLIDING_WINDOW_LUA + """
if #KEYS > 3 then
  local window = sliding_window(KEYS[4], KEYS[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
  if window[1] == 0 then return {'limited', window} end
end
if redis.call('exists', KEYS[1]) == 0 then return {'missing'} end
local view = redis.call('hmget', KEYS[2], 'client', 'service', 'body', 'waiting', 'lists_conversions')
if not view[3] then
  if ARGV[5] == '1' then return {'missing'} end
  return {'unrendered', {ARGV[1]}}
end
if view[1] ~= ARGV[2] or view[2] ~= ARGV[3] then return {'missing'} end
local rank = false
if view[4] then rank = redis.call('zrank', view[4], ARGV[1]) end
local conversions = false
if view[5] then
  conversions = {}
  local unrendered = {}
  for _, id in ipairs(redis.call('hvals', KEYS[3])) do
    if redis.call('exists', ARGV[4] .. id) == 1 then
      local entry = redis.call('hmget', ARGV[4] .. id .. ':view', 'created_at', 'conversion')  -- its view_key
      if entry[2] then
        table.insert(conversions, entry[1])
        table.insert(conversions, entry[2])
      elseif ARGV[5] ~= '1' then
        table.insert(unrendered, id)
      end
    end
  end
  if #unrendered > 0 then return {'unrendered', unrendered} end
end
return {'ok', view[3], rank, conversions}
"""


@dataclass(frozen=True)
class StatusRead:
    """A task's status as read: its rendered body and what is added to it per read."""

    body: str
    queue_rank: int | None
    conversions: list[tuple[float, str]] | None

    def json(self, base_url: str, included: dict[str, str] | None = None) -> str:
        """The status body, its links absolute under ``base_url``, with the ``included``
        members (rendered JSON by name) of a read that asked for more."""
        extras = dict(included or {})
        if self.queue_rank is not None:
            extras["queue_position"] = str(self.queue_rank + 1)
        if self.conversions is not None:
            extras["conversions"] = status_view.conversion_list(self.conversions)
        return status_view.absolute(status_view.with_extras(self.body, extras), base_url)


class StatusReader:
    def __init__(self, client: redis.Redis, store: TaskStore):
        self._script = client.register_script(_READ)
        self._store = store

    def read(self, settings: Settings, client: str, task_id: str, service: str) -> StatusRead:
        """The status of ``client``'s task, counted against its status limit. Raises
        RateLimited, or TaskNotFound for a task that is unknown, another client's or of
        another service."""
        keys = [task_key(task_id), view_key(task_id), task_key(task_id, "conversions")]
        arguments = [task_id, client, service, TASK_KEY_PREFIX]
        window = STATUS.window_check(settings, client)
        answer = self._script(keys=keys + window.keys, args=[*arguments, "0", *window.args])
        if answer[0] == b"limited":
            raise STATUS.refusal(settings, answer[1])
        for last in (False, True):  # the task's view, then its conversions' views, may be missing
            if answer[0] != b"unrendered":
                break
            for unrendered in answer[1]:
                self._store.ensure_view(unrendered.decode())
            # Counted already; the last time, what still has no view (a void task) counts as none.
            answer = self._script(keys=keys, args=[*arguments, "1" if last else "0"])
        if answer[0] != b"ok":
            raise TaskNotFound(f"No {service} task with id {task_id!r}.")
        _, body, rank, conversions = answer
        return StatusRead(body.decode(), rank,
                          None if conversions is None else [(float(conversions[i]), conversions[i + 1].decode())
                                                            for i in range(0, len(conversions), 2)])


def init_status_reads(app: Flask, client: redis.Redis, store: TaskStore) -> StatusReader:
    reader = app.extensions["bff_status_reader"] = StatusReader(client, store)
    return reader


def status_reader() -> StatusReader:
    return current_app.extensions["bff_status_reader"]
