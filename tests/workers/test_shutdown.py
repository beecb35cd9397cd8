"""A worker process drains once: a repeated stop signal within the drain window is ignored
(tests/processes/test_worker_drain.py shows it with the real processes)."""

from __future__ import annotations

import signal

from workers.shutdown import ignoring_repeats

DRAIN_SECONDS = 25.0


def test_only_the_first_stop_signal_of_the_drain_window_reaches_the_handler():
    handled: list[int] = []
    now = [1000.0]
    handle = ignoring_repeats(lambda signum, _frame: handled.append(signum), DRAIN_SECONDS, clock=lambda: now[0])

    handle(signal.SIGTERM, None)
    for later in (0.01, DRAIN_SECONDS - 0.02):  # the platform's and the forwarded one, in either order
        now[0] += later
        handle(signal.SIGTERM, None)
    assert handled == [signal.SIGTERM]

    now[0] += 0.02  # the drain is over: someone insisting still stops the process
    handle(signal.SIGTERM, None)
    assert handled == [signal.SIGTERM, signal.SIGTERM]
