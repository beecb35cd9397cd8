"""Stopping the worker role as the platforms do: SIGTERM to every process at once (Heroku
signals each process of a dyno; `docker stop` and `timeout` signal a process group).
Each Dramatiq worker process then gets the signal twice, the platform's and the one its
main process forwards, and the second must not cut the drain short: a provider call in
flight finishes, and its task is recorded as submitted."""

from __future__ import annotations

import os
import signal

from bff.tasks.record import SUBMITTED
from tests.conftest import wait_until
from tests.helpers import store_for
from tests.processes.running import kill, start

CALL_SECONDS = 3.0  # the create call in flight when the signal comes, well within the 25 s drain
EXIT_LIMIT_SECONDS = 30  # when the platforms send SIGKILL


def test_sigterm_to_every_process_lets_the_provider_call_in_flight_finish(client, redis_client, tripo_stand_in,
                                                                          tmp_path):
    tripo_url, stand_in = tripo_stand_in
    stand_in.delay_next("/generation/text-to-model", seconds=CALL_SECONDS)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = start("worker", {"TRIPO_API_BASE_URL": tripo_url, "WORKER_PROCESSES": "2", "WORKER_THREADS": "1"},
                       output=log)
    try:
        task_id = client.post("/generate/text-to-model", json={"prompt": "a lamp"}).get_json()["task_id"]
        wait_until(lambda: len(stand_in.creates()) == 1, timeout=30)

        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=EXIT_LIMIT_SECONDS)
    finally:
        if worker.poll() is None:
            kill(worker)

    task = store_for(redis_client).get(task_id)
    assert task.submission == SUBMITTED and task.error is None, log_path.read_text()
    assert task.provider_task_id in stand_in.tasks
