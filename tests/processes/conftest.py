"""Every test here starts the service's real processes: all are slow. The web role as
deployed by default (two gunicorn processes) is shared by the tests that only talk to it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sandbox.server import serve_in_thread
from sandbox.tripo import TripoSandbox, create_tripo_app
from tests.conftest import TRIPO_KEY
from tests.processes.running import start, stop, wait_ready
from tests.redis_server import free_port


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/processes/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@dataclass(frozen=True)
class WebRole:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="package")
def web_role():
    port = free_port()
    # A request limit high enough that tests sending many POSTs are never turned away.
    web = start("web", {"PORT": str(port), "BFF_TRIPO_OTHER_REQUESTS_PER_MINUTE": "1000"})
    try:
        wait_ready(f"http://127.0.0.1:{port}", web)
        yield WebRole(port)
    finally:
        stop(web)


@pytest.fixture
def tripo_stand_in() -> Iterator[tuple[str, TripoSandbox]]:
    """The Tripo stand-in on loopback (tasks take 1 s): its base URL and its controls."""
    app = create_tripo_app(api_key=TRIPO_KEY, task_seconds=1.0)
    server = serve_in_thread(app)
    yield f"{server.base_url}/v3", app.extensions["tripo_sandbox"]
    server.shutdown()
