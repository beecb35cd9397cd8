"""The Tripo stand-in for end-to-end tests, on a clock the test moves, with the helpers that
drive a model task through the BFF's app. ``stand_in`` is a fixture (tests/workers/conftest.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import requests

from bff.providers.tripo import TripoClient
from sandbox.server import serve_in_thread
from sandbox.tripo import TripoSandbox, create_tripo_app
from tests.conftest import TRIPO_KEY, wait_until
from tests.helpers import store_for
from workers import runtime

TASK_SECONDS = 20.0


class Clock:
    """The stand-in's clock: its tasks move on only when a test says so."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


@dataclass
class StandIn:
    url: str
    control: TripoSandbox
    clock: Clock

    def finish_all(self):
        self.clock.now += TASK_SECONDS


@pytest.fixture
def stand_in(settings, worker_runtime):
    clock = Clock()
    app = create_tripo_app(api_key=TRIPO_KEY, task_seconds=TASK_SECONDS, url_ttl_seconds=300.0, clock=clock)
    server = serve_in_thread(app)
    point_workers_at(settings, server.base_url)
    yield StandIn(server.base_url, app.extensions["tripo_sandbox"], clock)
    server.shutdown()


def point_workers_at(settings, server_url: str, **changes) -> None:
    """The worker runtime on the stand-in, with short client timeouts so timeout tests are quick."""
    changed = dataclasses.replace(settings, tripo_api_base_url=f"{server_url}/v3", **changes)
    built = runtime.WorkerRuntime.build(changed)
    runtime.install(dataclasses.replace(
        built, tripo=TripoClient(changed.tripo_api_base_url, changed.tripo_api_key, timeouts=(1.0, 1.0))
    ))


def submit(client, **body) -> str:
    response = client.post("/generate/text-to-model", json={"prompt": "a chess knight", **body})
    assert response.status_code == 202
    return response.get_json()["task_id"]


def status_of(client, task_id) -> dict:
    return client.get(f"/tasks/{task_id}/status?service=tripo").get_json()


def wait_for_status(client, task_id, status) -> dict:
    return wait_until(lambda: (s := status_of(client, task_id))["status"] == status and s)


def wait_for_submission(redis_client, task_id) -> str:
    return wait_until(lambda: store_for(redis_client).get(task_id).provider_task_id)


def download(client, path) -> requests.Response:
    redirect = client.get(path)
    assert redirect.status_code == 302
    return requests.get(redirect.headers["Location"], timeout=5)
