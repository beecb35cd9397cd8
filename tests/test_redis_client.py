"""The capped pool's queue of free connections serves waiting requests first come, first
served (bff.redis_client.FirstComeFirstServed)."""

from __future__ import annotations

import queue
import threading

import pytest

from bff.redis_client import FirstComeFirstServed
from tests.conftest import wait_until


def waiting_get(free: FirstComeFirstServed, got: list, name: str, waiters_before: int) -> threading.Thread:
    """A thread that waits for a free connection; returns once it is waiting."""
    thread = threading.Thread(target=lambda: got.append((name, free.get(timeout=10))))
    thread.start()
    wait_until(lambda: len(free._waiters) == waiters_before + 1)
    return thread


def test_a_connection_put_back_goes_to_the_longest_waiting_request_not_a_newcomer():
    free = FirstComeFirstServed(2)
    got: list = []
    first = waiting_get(free, got, "first", 0)
    second = waiting_get(free, got, "second", 1)

    free.put_nowait("connection-a")
    with pytest.raises(queue.Empty):
        free.get(block=False)  # a request arriving now does not take it from the waiters
    first.join(timeout=5)
    free.put_nowait("connection-b")
    second.join(timeout=5)

    assert got == [("first", "connection-a"), ("second", "connection-b")]


def test_free_connections_are_taken_last_in_first_out_when_nobody_waits():
    free = FirstComeFirstServed(3)
    for connection in ("a", "b", "c"):
        free.put_nowait(connection)

    assert [free.get(block=False) for _ in range(3)] == ["c", "b", "a"]


def test_a_wait_that_runs_out_is_empty_and_leaves_no_waiter_behind():
    free = FirstComeFirstServed(1)

    with pytest.raises(queue.Empty):
        free.get(timeout=0.01)

    free.put_nowait("connection")
    assert free.get(block=False) == "connection"


def test_it_holds_at_most_its_size_as_the_pool_expects_when_it_fills_it():
    free = FirstComeFirstServed(2)
    free.put_nowait(None)
    free.put_nowait(None)

    with pytest.raises(queue.Full):
        free.put_nowait(None)


def test_a_waiter_interrupted_after_being_handed_a_connection_passes_it_on(monkeypatch):
    """A request whose wait is interrupted (its greenlet killed) just as a connection is
    handed to it must not take the connection with it."""
    import bff.redis_client as redis_client

    free = FirstComeFirstServed(1)

    class Interrupted(BaseException):
        pass

    class HandedThenInterrupted(redis_client._Waiter):
        def __init__(self):
            super().__init__()
            real_event = self.handed

            class Event:
                def wait(self, timeout=None):
                    free.put_nowait("connection")  # handed over as the interruption comes
                    raise Interrupted

                def __getattr__(self, name):
                    return getattr(real_event, name)

            self.handed = Event()

    monkeypatch.setattr(redis_client, "_Waiter", HandedThenInterrupted)
    with pytest.raises(Interrupted):
        free.get(timeout=5)
    monkeypatch.undo()

    assert free.get(block=False) == "connection"
