"""The README's run path, as a newcomer meets it: the launcher started as a process, and
scripts/demo.py driving it over HTTP until every flow's downloads check out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.processes.running import wait_ready
from tests.redis_server import free_port

ROOT = Path(__file__).parent.parent.parent
SANDBOX_ENV = {"BFF_SANDBOX": "true", "BFF_SANDBOX_TASK_SECONDS": "2", "BFF_POLL_INTERVAL_SECONDS": "0.5",
               "WEB_CONCURRENCY": "1", "WORKER_PROCESSES": "1", "WORKER_THREADS": "2"}
PROVIDER_VARIABLES = ("TRIPO_API_KEY", "TRIPO_API_BASE_URL", "OPENAI_API_KEY", "OPENAI_API_BASE_URL")


def launcher_env(**extra) -> dict:
    # As a newcomer runs it: no provider settings, and no identity (so sandbox sign-in is on).
    unset = (*PROVIDER_VARIABLES, "REDIS_URL", "BFF_ALLOW_ANONYMOUS")
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    return {**environ, **SANDBOX_ENV, "PORT": str(free_port()), "BFF_SANDBOX_PORT": str(free_port()), **extra}


def start_launcher(environ: dict, role: str = "all") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bff.launcher", role], cwd=ROOT, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_demo(base_url: str, sandbox_port: str) -> subprocess.CompletedProcess:
    token_url = f"http://127.0.0.1:{sandbox_port}/auth/token"  # the sandbox's local sign-in issuer
    # A bound for a loaded machine: the demo runs its eight flows one after another.
    return subprocess.run([sys.executable, "scripts/demo.py", "--base-url", base_url, "--token-url", token_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("store", ["embedded", "redis"])
def test_the_run_command_serves_every_flow_end_to_end(store, redis_client):
    extra = {"REDIS_URL": os.environ["REDIS_URL"]} if store == "redis" else {}
    environ = launcher_env(**extra)
    base_url = f"http://127.0.0.1:{environ['PORT']}"
    launcher = start_launcher(environ)
    try:
        wait_ready(base_url, launcher)
        assert requests.get(f"{base_url}/readyz", timeout=2).json()["sandbox"] is True
        assert requests.get(f"{base_url}/styles", timeout=2).status_code == 401  # users must sign in

        demo = run_demo(base_url, environ["BFF_SANDBOX_PORT"])

        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert demo.stdout.count("OK   ") == 8 and "GLB 2.0" in demo.stdout and "PNG 1024x1024" in demo.stdout
        assert "USDZ, " in demo.stdout and "binary STL, 12 triangles" in demo.stdout
        assert "OK   two users: each user sees their own task; the other's is 404" in demo.stdout
    finally:
        launcher.terminate()
        launcher.wait(timeout=40)
    assert launcher.returncode == 0


def test_a_single_role_refuses_the_embedded_store():
    finished = start_launcher(launcher_env(), role="web")

    output, _ = finished.communicate(timeout=30)

    assert finished.returncode == 2 and "use `python -m bff.launcher all`" in output
