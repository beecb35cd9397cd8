"""Shared fixtures: a private Redis, the app, a real Dramatiq worker, and Tripo mocked
at the HTTP boundary with requests-mock.

The environment is set in ``pytest_configure``, before any test module imports
``workers.actors``: actors bind to the broker that exists when they are imported.
"""

from __future__ import annotations

import os
import time

import dramatiq
import pytest
import redis

from tests.redis_server import PrivateRedis

TRIPO_BASE_URL = "https://tripo.test/v3"
TRIPO_KEY = "tsk_test_key_0123456789"
OPENAI_KEY = "sk-test-key-0123456789"

_redis_server = PrivateRedis()
# Fixtures for any test module: the sandbox sign-in issuer on loopback (`issuer`), and a
# local S3 (`local_s3`, `aws_env`, `bucket`; moto loads only when one is used).
pytest_plugins = ["tests.issuer", "tests.local_s3"]


def pytest_configure(config):
    _redis_server.start()
    os.environ.update(
        REDIS_URL=_redis_server.url,
        TRIPO_API_KEY=TRIPO_KEY,
        TRIPO_API_BASE_URL=TRIPO_BASE_URL,
        OPENAI_API_KEY=OPENAI_KEY,
        BFF_POLL_INTERVAL_SECONDS="0.2",
        BFF_LOG_LEVEL="INFO",
        # Tests of sign-in and app keys configure them; the rest run as address-based clients.
        BFF_ALLOW_ANONYMOUS="true",
    )


def redis_port() -> int:
    """The private Redis server's port (for a proxy in front of it)."""
    return _redis_server.port


def pytest_unconfigure(config):
    _redis_server.remove()


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02):
    """Wait for ``condition()`` to return something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(_redis_server.url)
    client.flushdb()  # our private server: every key in it was made by these tests
    yield client
    client.flushdb()


@pytest.fixture
def settings(redis_client):
    from bff.settings import Settings

    return Settings.from_env()


@pytest.fixture
def app(settings):
    from bff.web import create_app

    built = create_app(settings)
    yield built
    built.extensions["bff"].metrics.close()  # its metrics flusher must not outlive the test


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def worker_runtime(settings):
    """The worker runtime, rebuilt per test so a test may change settings."""
    import workers.actors  # noqa: F401  (declares the actors on the broker)
    from workers import runtime

    built = runtime.WorkerRuntime.build(settings)
    runtime.install(built)
    return built


@pytest.fixture
def worker(worker_runtime):
    """A real Dramatiq worker (threads in this process) consuming from the private Redis."""
    broker = dramatiq.get_broker()
    middleware_before = len(broker.middleware)
    running = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    running.start()
    yield running
    running.stop()
    # A Worker adds its own middleware to the broker and never removes it.
    del broker.middleware[middleware_before:]


@pytest.fixture
def tripo(requests_mock):
    from tests.tripo_fake import FakeTripo

    return FakeTripo(requests_mock, TRIPO_BASE_URL, TRIPO_KEY)
