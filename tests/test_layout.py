"""The layout's promises: the task core and the workers run without the web stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
WEB_STACK = ("flask", "flask_smorest", "werkzeug", "swagger_ui_bundle")


@pytest.mark.parametrize("modules", [
    "bff.tasks.record, bff.tasks.store, bff.tasks.lifecycle, bff.tasks.capacity, bff.tasks.error_codes, "
    "bff.tasks.queue, bff.tasks.services, bff.tasks.styles, bff.providers.tripo, bff.providers.openai, "
    "bff.providers.tripo_requests, bff.providers.openai_requests, bff.providers.tripo_status, bff.providers.calls, "
    "bff.metrics, bff.credits.book, bff.credits.credits, bff.credits.pricing, bff.credits.settlement",
    "bff.metrics, bff.results.locations, bff.results.object_store, bff.results.file_kinds, bff.results.task_files",
    "workers.actors, workers.polling, workers.reconcile, workers.submission, workers.senders, workers.scheduler, "
    "workers.storing",
])
def test_the_task_core_and_the_workers_do_not_import_the_web_stack(modules):
    script = (f"import importlib, sys\nfor name in {modules!r}.split(', '): importlib.import_module(name)\n"
              f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB_STACK!r}))))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BFF_LOG_LEVEL": "ERROR"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
