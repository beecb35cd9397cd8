"""Fixtures for the stand-in tests: one real server per module, a hand-moved clock."""

import pytest
import requests

from sandbox.openai import create_openai_app
from sandbox.server import serve_in_thread
from sandbox.tripo import create_tripo_app

API_KEY = "tsk_test"
OPENAI_API_KEY = "sk-test"
TASK_SECONDS = 20.0
URL_TTL_SECONDS = 300.0
START = 1_800_000_000.0


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Tripo:
    """What a test needs: the server, the controller, the clock and an authorised client."""

    def __init__(self, server, sandbox, clock):
        self.server, self.sandbox, self.clock = server, sandbox, clock
        self.api = f"{server.base_url}/v3"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {API_KEY}"

    def post(self, path: str, body, **kwargs):
        return self.http.post(self.api + path, json=body, timeout=5, **kwargs)

    def get(self, path: str, **kwargs):
        return self.http.get(self.api + path, timeout=5, **kwargs)

    def task(self, task_id: str) -> dict:
        response = self.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def create_text(self, **overrides) -> str:
        body = {"prompt": "a small wooden chair", "model": "v3.1-20260211", **overrides}
        response = self.post("/generation/text-to-model", body)
        assert response.status_code == 200, response.text
        return response.json()["data"]["task_id"]

    def finished_task(self, **overrides) -> dict:
        task_id = self.create_text(**overrides)
        self.clock.advance(TASK_SECONDS)
        return self.task(task_id)


class OpenAI:
    """What an OpenAI test needs: the server, the controller, the clock and an
    authorised client of the edits endpoint."""

    def __init__(self, server, sandbox, clock):
        self.server, self.sandbox, self.clock = server, sandbox, clock
        self.url = f"{server.base_url}/v1/images/edits"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {OPENAI_API_KEY}"

    def edit(self, files, **fields):
        """POST multipart: `files` as requests takes them, `fields` as text parts."""
        return self.http.post(self.url, data=fields, files=files, timeout=5)


def _serve(app, extension: str, clock: FakeClock):
    server = serve_in_thread(app)
    yield server, app.extensions[extension], clock
    server.shutdown()


@pytest.fixture(scope="module")
def _running():
    clock = FakeClock()
    app = create_tripo_app(api_key=API_KEY, task_seconds=TASK_SECONDS,
                           url_ttl_seconds=URL_TTL_SECONDS, clock=clock)
    yield from _serve(app, "tripo_sandbox", clock)


@pytest.fixture(scope="module")
def _openai_running():
    clock = FakeClock()
    app = create_openai_app(api_key=OPENAI_API_KEY, clock=clock)
    yield from _serve(app, "openai_sandbox", clock)


def _fresh_client(running, client_class):
    """A client of a server shared by the module, with its stand-in and clock as new."""
    server, sandbox, clock = running
    sandbox.reset()
    clock.now = START
    client = client_class(server, sandbox, clock)
    yield client
    client.http.close()


@pytest.fixture
def tripo(_running):
    yield from _fresh_client(_running, Tripo)


@pytest.fixture
def openai(_openai_running):
    yield from _fresh_client(_openai_running, OpenAI)
