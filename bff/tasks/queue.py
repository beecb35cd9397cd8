"""The messages the web process hands to the workers.

The web side enqueues by actor name so it never imports the worker code; the actors in
``workers.actors`` register under these same names and queues. A message only nudges a
task forward: the task record decides what happens, so a lost or repeated message is
harmless.
"""

from __future__ import annotations

import time

import dramatiq

SUBMIT_QUEUE = "submit"
POLL_QUEUE = "poll"
STORE_QUEUE = "store"

SUBMIT_TASK = "submit_task"
POLL_TASKS = "poll_tasks"
REFRESH_OUTPUT_URLS = "refresh_output_urls"
STORE_RESULTS = "store_results"


class TaskQueue:
    def __init__(self, broker: dramatiq.Broker):
        self._broker = broker

    def submit(self, task_id: str, request_id: str) -> None:
        self._send(SUBMIT_QUEUE, SUBMIT_TASK, task_id, request_id)

    def poll(self) -> None:
        # The send time lets a poll message that waited behind busy workers be skipped.
        self._send(POLL_QUEUE, POLL_TASKS, time.time())

    def submit_later(self, task_id: str, request_id: str, delay_seconds: float) -> None:
        self._send(SUBMIT_QUEUE, SUBMIT_TASK, task_id, request_id, delay_seconds=delay_seconds)

    def refresh_output_urls(self, task_id: str, request_id: str) -> None:
        self._send(POLL_QUEUE, REFRESH_OUTPUT_URLS, task_id, request_id)

    def store_results(self, task_id: str, request_id: str, delay_seconds: float | None = None) -> None:
        self._send(STORE_QUEUE, STORE_RESULTS, task_id, request_id, delay_seconds=delay_seconds)

    def _send(self, queue_name: str, actor_name: str, *args, delay_seconds: float | None = None) -> None:
        message: dramatiq.Message = dramatiq.Message(
            queue_name=queue_name, actor_name=actor_name, args=args, kwargs={}, options={})
        self._broker.enqueue(message, delay=None if delay_seconds is None else int(delay_seconds * 1000))
