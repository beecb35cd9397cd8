"""REDIS_URL: a URL the settings accept opens in every component that uses it (task store,
Dramatiq broker, request limits); a unix:// socket stops every role at start with a
message naming REDIS_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dramatiq.brokers.redis import RedisBroker

from bff.redis_client import build_redis
from bff.settings import Settings, SettingsError

ROOT = Path(__file__).parent.parent
REQUIRED = {"TRIPO_API_KEY": "tsk_abc", "OPENAI_API_KEY": "sk-abc", "BFF_ALLOW_ANONYMOUS": "true"}
UNIX_SOCKET_URL = "unix:///var/run/redis/redis.sock"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:password@redis.example:6380/0"])
def test_an_accepted_url_is_one_every_component_can_open(url):
    redis_url = Settings.from_env({**REQUIRED, "REDIS_URL": url}).redis_url

    RedisBroker(client=build_redis(redis_url))  # task store, queue and poller lease (the worker role)
    web_client = build_redis(redis_url, max_connections=2)  # the web role's (request limits too), with its cap
    RedisBroker(client=web_client)


def test_a_unix_socket_url_is_refused_by_the_settings():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**REQUIRED, "REDIS_URL": UNIX_SOCKET_URL})

    assert str(raised.value).startswith("REDIS_URL") and "unix://" in str(raised.value)


@pytest.mark.parametrize("role", ["web", "worker"])
def test_a_unix_socket_url_stops_each_role_at_start_naming_it(role):
    environ = {**os.environ, **REQUIRED, "REDIS_URL": UNIX_SOCKET_URL}

    finished = subprocess.run([sys.executable, "-m", "bff.launcher", role], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=60)

    assert finished.returncode == 2
    assert "cannot start: REDIS_URL" in finished.stderr and "unix://" in finished.stderr
