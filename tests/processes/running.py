"""Starting the service's real processes (through the launcher) from a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import wait_until

ROOT = Path(__file__).parent.parent.parent


def start(role: str, environ: dict, output=subprocess.DEVNULL) -> subprocess.Popen:
    """``python -m bff.launcher ROLE`` in its own process group (so a kill reaches its children)."""
    return subprocess.Popen([sys.executable, "-m", "bff.launcher", role], cwd=ROOT, env={**os.environ, **environ},
                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        process.wait(timeout=40)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the whole process group, as a platform does to a container."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def is_ready(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/readyz", timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        # gunicorn's master accepts connections before its worker has loaded the app: on a
        # busy machine the first answers can take longer than the timeout. Not ready yet.
        return False


def wait_ready(base_url: str, process: subprocess.Popen | None = None) -> None:
    wait_until(lambda: is_ready(base_url) or (process is not None and process.poll() is not None), timeout=30)
    assert process is None or process.poll() is None, "the process exited before it was ready"
