"""The provider limits hold with two web and two worker processes on one Redis: shown by
what the provider stand-ins saw, over real HTTP, with the real gunicorn and dramatiq
processes started by the launcher."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sandbox.openai import create_openai_app
from sandbox.server import serve_in_thread
from sandbox.tripo import create_tripo_app
from tests.conftest import OPENAI_KEY, TRIPO_KEY, wait_until
from tests.images import encoded
from tests.processes.running import start, stop, wait_ready
from tests.redis_server import free_port

TRIPO_LIMIT = 4
OPENAI_LIMIT, OPENAI_WINDOW = 2, 2.0
TASK_SECONDS = 1.0


@pytest.fixture(scope="module")
def deployment():
    tripo_app = create_tripo_app(api_key=TRIPO_KEY, task_seconds=TASK_SECONDS)
    openai_app = create_openai_app(api_key=OPENAI_KEY)
    stand_ins = serve_in_thread(DispatcherMiddleware(NotFound(), {"/tripo": tripo_app, "/openai": openai_app}))
    port = free_port()
    environ = {
        "PORT": str(port), "WEB_CONCURRENCY": "2", "WORKER_PROCESSES": "2", "WORKER_THREADS": "4",
        "TRIPO_API_BASE_URL": f"{stand_ins.base_url}/tripo/v3",
        "OPENAI_API_BASE_URL": f"{stand_ins.base_url}/openai/v1",
        "BFF_TRIPO_CONCURRENCY": str(TRIPO_LIMIT), "BFF_OPENAI_TASKS_PER_MINUTE": str(OPENAI_LIMIT),
        "BFF_OPENAI_WINDOW_SECONDS": str(OPENAI_WINDOW), "BFF_POLL_INTERVAL_SECONDS": "0.3",
        "BFF_TRIPO_OTHER_REQUESTS_PER_MINUTE": "1000", "BFF_OPENAI_REQUESTS_PER_MINUTE": "1000",
        "BFF_STATUS_REQUESTS_PER_MINUTE": "100000",
    }
    processes = [start(role, environ) for role in ("web", "worker")]
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url, processes[0])
    yield base_url, tripo_app.extensions["tripo_sandbox"], openai_app.extensions["openai_sandbox"]
    stop(*processes)
    stand_ins.shutdown()


def _all_finished(base_url: str, tasks: list[dict], timeout: float) -> list[dict]:
    def statuses():
        seen = [requests.get(task["status_url"], timeout=5).json() for task in tasks]
        return all(s["status"] in ("completed", "failed") for s in seen) and seen
    return wait_until(statuses, timeout=timeout, interval=0.5)


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = most = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def test_30_tripo_tasks_at_once_never_exceed_the_limit_in_flight(deployment):
    base_url, tripo, _ = deployment
    with ThreadPoolExecutor(max_workers=10) as pool:
        accepted = list(pool.map(lambda i: requests.post(f"{base_url}/generate/text-to-model",
                                                        json={"prompt": f"model number {i}"}, timeout=10), range(30)))
    assert all(response.status_code == 202 for response in accepted)

    finished = _all_finished(base_url, [response.json() for response in accepted], timeout=120)

    assert all(status["status"] == "completed" for status in finished)
    created = list(tripo.tasks.values())
    assert len(created) == 30 and len(tripo.creates()) == 30  # one create per task, none re-sent
    assert _most_at_once([(task.created_at, task.finish_at) for task in created]) <= TRIPO_LIMIT


def test_openai_edits_stay_within_the_rolling_window(deployment):
    base_url, _, openai = deployment
    accepted = [requests.post(f"{base_url}/generate/image-to-image", timeout=10,
                              files={"image": ("a.png", io.BytesIO(encoded("PNG")), "image/png")},
                              data={"prompt": "a robot"}).json() for _ in range(6)]

    finished = _all_finished(base_url, accepted, timeout=120)

    assert all(status["status"] == "completed" for status in finished)
    starts = sorted(request.received_at for request in openai.processed)
    assert len(starts) == 6
    # Any window of the configured length (less a little for network jitter) holds at most the limit.
    slack = 0.2
    assert all(sum(1 for t in starts if first <= t < first + OPENAI_WINDOW - slack) <= OPENAI_LIMIT
               for first in starts)
