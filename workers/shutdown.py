"""A worker process drains once, however many SIGTERMs it gets.

Platforms stop a service by sending SIGTERM to every one of its processes (Heroku signals
each process of a dyno; `docker stop` and `timeout` signal a process group), and
Dramatiq's main process forwards the one it gets to its worker processes as well: each
worker process gets two. Dramatiq's handler takes the second as "kill now", which would
cut the drain short and kill a provider call in flight (its task then ends as
``provider_outcome_unknown`` although the call could have finished). So, once a worker
process has booted, its handler is wrapped: repeats within the drain window are ignored.

A signal that comes while a worker process is still booting (before ``process_boot``)
reaches Dramatiq's handler alone, so a repeat then still ends the process; harmless, as a
process that has not booted has taken no message.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

import dramatiq

log = logging.getLogger(__name__)

SignalHandler = Callable[[int, FrameType | None], object]


def ignoring_repeats(handler: SignalHandler, window_seconds: float,
                     clock: Callable[[], float] = time.monotonic) -> SignalHandler:
    """``handler``, called for the first signal and for any that comes ``window_seconds``
    or more after it (someone insists: the drain is over anyway); the others are ignored."""
    first_at: float | None = None

    def handle(signum: int, frame: FrameType | None) -> object:
        nonlocal first_at
        now = clock()
        if first_at is None:
            first_at = now
        elif now - first_at < window_seconds:
            log.info("stop signal repeated while draining: ignored", extra={"signal": signal.Signals(signum).name})
            return None
        return handler(signum, frame)

    return handle


class DrainOnce(dramatiq.Middleware):
    """Wraps Dramatiq's SIGTERM handler in each worker process of its command line (the
    only place that emits ``process_boot``, after installing that handler)."""

    def __init__(self, drain_seconds: float) -> None:
        self._drain_seconds = drain_seconds

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            signal.signal(signal.SIGTERM, ignoring_repeats(handler, self._drain_seconds))
