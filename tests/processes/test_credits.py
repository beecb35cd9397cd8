"""Credits across real processes: simultaneous requests spread over two web processes
(gunicorn, started by the launcher) never together pass a user's allowance or the
service's budget; and the operator commands run as ``flask --app wsgi credits ...``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bff.credits.credits import Credits
from bff.tasks.queue import SUBMIT_QUEUE
from tests.credits.building import credits_for
from tests.helpers import queued, store_for
from tests.processes.running import ROOT, start, stop, wait_ready
from tests.redis_server import free_port

KEYS = {name: f"{name}-key-0123456789abcdefghijklmn" for name in ("a", "b", "c", "d")}
PRICE = 20  # a textured text-to-model
ALLOWANCE, BUDGET = 5 * PRICE, 15 * PRICE
CREDIT_SETTINGS = {"BFF_USER_DAILY_CREDITS": str(ALLOWANCE), "BFF_SERVICE_DAILY_CREDITS": str(BUDGET),
                   "BFF_API_KEYS": ",".join(f"{name}={key}" for name, key in KEYS.items())}


@pytest.fixture(scope="module")
def web_processes():
    """Two web roles on one Redis, one gunicorn process each: two separate processes."""
    ports = [free_port(), free_port()]
    processes = [start("web", {**CREDIT_SETTINGS, "PORT": str(port), "WEB_CONCURRENCY": "1",
                               "BFF_TRIPO_OTHER_REQUESTS_PER_MINUTE": "1000"}) for port in ports]
    base_urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base_url, process in zip(base_urls, processes, strict=True):
            wait_ready(base_url, process)
        yield base_urls
    finally:
        stop(*processes)


def all_at_once(base_urls: list[str], clients: list[str]) -> list[requests.Response]:
    """One text-to-model request per entry of ``clients`` (a key name), all released at
    once, alternating between the web processes."""
    start_line = threading.Barrier(len(clients))

    def one(position: int) -> requests.Response:
        start_line.wait(timeout=30)
        return requests.post(f"{base_urls[position % len(base_urls)]}/generate/text-to-model", timeout=30,
                             json={"prompt": "a fox"}, headers={"X-API-Key": KEYS[clients[position]]})

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        return list(pool.map(one, range(len(clients))))


def outcomes(responses: list[requests.Response]) -> Counter:
    return Counter((response.status_code, (response.json() or {}).get("reason")) for response in responses)


def credits(redis_client) -> Credits:
    return credits_for(redis_client, bff_user_daily_credits=ALLOWANCE, bff_service_daily_credits=BUDGET)


def test_simultaneous_requests_on_two_web_processes_never_pass_the_allowance_or_the_budget(web_processes,
                                                                                          redis_client):
    one_user = all_at_once(web_processes, ["a"] * 20)

    assert outcomes(one_user) == {(202, None): 5, (429, "credits_exhausted"): 15}
    assert all(0 < int(response.headers["Retry-After"]) <= 86400 for response in one_user
               if response.status_code == 429)

    # The budget has room for ten more; three users could take fifteen between them.
    three_users = all_at_once(web_processes, ["b", "c", "d"] * 10)

    accepted = [response for response in three_users if response.status_code == 202]
    assert len(accepted) == 10 and outcomes(three_users)[503, "service_budget_exhausted"] > 0
    # A refused request recorded and queued nothing.
    assert len(store_for(redis_client).open_task_ids()) == 15 and queued(redis_client, SUBMIT_QUEUE) == 15
    assert credits(redis_client).spent_today() == BUDGET


def test_the_operator_commands_run_in_the_flask_cli(web_processes, redis_client):
    user = "key:a"
    environ = {**os.environ, **CREDIT_SETTINGS}
    flask = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "credits"]

    def run(*args: str) -> str:
        done = subprocess.run([*flask, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = credits(redis_client).book.summary(user, allowance=ALLOWANCE)["allowance"]
    granted = run("grant", user, str(2 * PRICE), "--reason", "support ticket 7")

    assert f"granted {2 * PRICE} credits to {user}" in granted
    assert credits(redis_client).book.summary(user, allowance=ALLOWANCE)["allowance"] == before + 2 * PRICE
    shown = run("show", user)
    assert f"grant {2 * PRICE} (support ticket 7)" in shown
    assert run("spend").splitlines()[0] == f"daily budget: {BUDGET}"
