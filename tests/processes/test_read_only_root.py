"""Both roles run on a read-only root filesystem with only /tmp writable, as in
`docker run --read-only --tmpfs /tmp`: gunicorn's worker heartbeat files go to /tmp and
nothing else is written (gunicorn's control socket, which it would put under $HOME, is off).

The container is imitated with a private mount namespace (unshare), which needs root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.processes.running import ROOT, stop, wait_ready
from tests.redis_server import free_port

pytestmark = pytest.mark.slow

# In the new mount namespace: the whole tree again, remounted read-only, then a fresh /tmp.
READ_ONLY_ROOT = ("mount --rbind / / && mount -o remount,bind,ro / && mount -t tmpfs -o mode=1777 tmpfs /tmp "
                  '&& exec "$@"')


def outside_tmp() -> bool:
    """The fresh /tmp would hide a checkout or interpreter that lives under /tmp."""
    return not any(Path(path).resolve().is_relative_to("/tmp") for path in (ROOT, sys.executable))


def can_make_mount_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


def start_read_only(role: str, environ: dict, output) -> subprocess.Popen:
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh",
               sys.executable, "-m", "bff.launcher", role]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "HOME": "/nonexistent", **environ},
                            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.skipif(not can_make_mount_namespaces(), reason="needs root to make a mount namespace")
@pytest.mark.skipif(not outside_tmp(), reason="the checkout lives under /tmp, which the test replaces")
def test_both_roles_run_on_a_read_only_root_with_a_writable_tmp(tmp_path: Path):
    port = free_port()
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with web_log.open("w") as web_output, worker_log.open("w") as worker_output:
        web = start_read_only("web", {"PORT": str(port), "WEB_CONCURRENCY": "1"}, web_output)
        worker = start_read_only("worker", {"WORKER_PROCESSES": "1", "WORKER_THREADS": "1"}, worker_output)
        try:
            wait_ready(f"http://127.0.0.1:{port}", web)
            # Answered from Redis. (The response is not kept: it would hold its connection
            # open, and gunicorn waits for open connections when it stops.)
            status_url = f"http://127.0.0.1:{port}/tasks/unknown/status?service=tripo"
            assert requests.get(status_url, timeout=5).status_code == 404
            wait_until(lambda: "ready for action" in worker_log.read_text() or worker.poll() is not None, timeout=30)
        finally:
            stop(web, worker)

    logs = web_log.read_text() + worker_log.read_text()
    assert "ready for action" in logs
    assert "Read-only file system" not in logs and '"level": "ERROR"' not in logs, logs
    assert web.returncode == 0 and worker.returncode == 0
