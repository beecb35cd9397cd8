"""Failures with real processes: a worker killed with SIGKILL mid-work, and Redis stopped
while the service runs. Nothing accepted is lost and nothing is created twice."""

from __future__ import annotations

import time

import requests

from tests.conftest import wait_until
from tests.helpers import store_for
from tests.processes.running import kill, start, stop, wait_ready
from tests.redis_server import PrivateRedis, free_port
from workers.reconcile import CLAIM_TIMEOUT_SECONDS, NUDGE_AFTER_SECONDS

TEXT = "/generation/text-to-model"


def worker_env(tripo_url: str, **extra) -> dict:
    return {"TRIPO_API_BASE_URL": tripo_url, "BFF_POLL_INTERVAL_SECONDS": "0.3", "WORKER_PROCESSES": "1", **extra}


def test_a_worker_killed_mid_work_loses_nothing_and_sends_nothing_twice(client, redis_client, tripo_stand_in):
    tripo_url, stand_in = tripo_stand_in
    stand_in.delay_next(TEXT, seconds=30)  # the first create hangs at Tripo: the worker is mid-call
    worker = start("worker", worker_env(tripo_url, WORKER_THREADS="1"))
    in_flight, queued_behind = (client.post("/generate/text-to-model", json={"prompt": p}).get_json()["task_id"]
                                for p in ("first", "second"))
    wait_until(lambda: len(stand_in.creates()) == 1)

    kill(worker)
    store = store_for(redis_client)
    # Let the clocks run out instead of waiting: the in-flight claim is past the longest
    # call, and the queued task's message is overdue.
    past = time.time() - CLAIM_TIMEOUT_SECONDS["tripo"] - 1
    store.update(in_flight, lambda t: t.evolve(claimed_at=past, sending_at=past))
    store.update(queued_behind, lambda t: t.evolve(created_at=time.time() - NUDGE_AFTER_SECONDS - 1)
                 if t.submission == "not_submitted" else None)
    replacement = start("worker", worker_env(tripo_url))
    try:
        wait_until(lambda: store.get(queued_behind).status == "completed", timeout=30)
        wait_until(lambda: store.get(in_flight).status == "failed", timeout=30)
    finally:
        stop(replacement)

    assert store.get(in_flight).error.code == "provider_outcome_unknown"
    creates = [request.json["prompt"] for request in stand_in.creates()]
    assert sorted(creates) == ["first", "second"]  # each sent exactly once, the uncertain one never again


def test_redis_stopped_gives_fast_503s_and_the_service_recovers_by_itself(tripo_stand_in):
    tripo_url, stand_in = tripo_stand_in
    redis_server = PrivateRedis(persistent=True)
    redis_server.start()
    port = free_port()
    environ = {**worker_env(tripo_url), "REDIS_URL": redis_server.url, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    web, worker = start("web", environ), start("worker", environ)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, web)
        before = requests.post(f"{base_url}/generate/text-to-model", json={"prompt": "before"}, timeout=5).json()

        redis_server.stop()
        for method, path, body in [("get", "/readyz", None), ("post", "/generate/text-to-model", {"prompt": "x"}),
                                   ("get", f"/tasks/{before['task_id']}/status?service=tripo", None)]:
            started = time.monotonic()
            response = getattr(requests, method)(f"{base_url}{path}", json=body, timeout=10)
            assert response.status_code == 503 and response.json()["code"] == 503, path
            assert time.monotonic() - started < 2.0, path

        redis_server.start()
        wait_ready(base_url, web)
        after = requests.post(f"{base_url}/generate/text-to-model", json={"prompt": "after"}, timeout=5).json()

        # A submit message that ran just as Redis stopped is lost with it: reconciliation
        # sends its task again NUDGE_AFTER_SECONDS later.
        for task in (before, after):
            status_url = task["status_url"]
            wait_until(lambda url=status_url: requests.get(url, timeout=5).json()["status"] == "completed",
                       timeout=NUDGE_AFTER_SECONDS + 30)
        # The request answered 503 made no task; each accepted one was sent exactly once.
        assert sorted(request.json["prompt"] for request in stand_in.creates()) == ["after", "before"]
    finally:
        stop(web, worker)
        redis_server.remove()
