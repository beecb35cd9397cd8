"""Starts the BFF's processes: ``python -m bff.launcher web|worker|all``.

This is the one place that holds the command lines of the web and worker processes;
the Procfile, the Dockerfile and ``./run`` all come through here. Production runs
``web`` and ``worker`` as separate services. ``all`` is for a laptop or a demo:

- with a Redis server (``REDIS_URL``), web and worker run as child processes;
- in sandbox mode with no ``REDIS_URL``, everything runs in this one process on the
  embedded store: web server, worker threads, poller and provider stand-ins. The
  application code is the same; only the store behind it differs.

In sandbox mode the provider stand-ins run in this process either way.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from urllib.parse import urlparse

from bff.settings import Settings, load_settings_or_exit

# gevent workers: every connection is a greenlet, not one of a few threads, so clients that
# send their request slowly (or stall mid-body) cannot take every slot and starve /healthz
# and status reads; a process takes up to --worker-connections (WEB_CONNECTIONS) at once.
# `gevent.monkey` patches the standard library before gunicorn is even imported: patched
# later (by the worker), ssl would already be loaded unpatched, and HTTPS calls to the
# providers and to a rediss:// Redis would misbehave.
# --keep-alive 75: longer than the idle timeouts of clients and platform routers, so an
# idle keep-alive connection is never closed by gunicorn just as a client reuses it
# (gunicorn's 2 s default made a mobile client's next POST fail with a reset).
# --no-control-socket: nothing uses gunicornc, and its socket would be written under $HOME,
# which a read-only root filesystem does not allow.
WEB_COMMAND = (
    "gevent.monkey --module gunicorn wsgi:app --config python:bff.gunicorn_config --bind 0.0.0.0:{port} "
    "--worker-class gevent --workers {web_processes} --worker-connections {web_connections} "
    "--timeout 60 --graceful-timeout 25 --keep-alive 75 --no-control-socket"
)
# How long a worker process finishes its current messages after SIGTERM: within the
# platforms' 30 s before SIGKILL.
WORKER_DRAIN_SECONDS = 25
# Dramatiq's command line, run through `run_dramatiq` so that its own lines are JSON too.
WORKER_COMMAND = (
    "bff.launcher dramatiq workers.actors --skip-logging --processes {worker_processes} "
    f"--threads {{worker_threads}} --worker-shutdown-timeout {WORKER_DRAIN_SECONDS * 1000}"
)


def command_for(role: str, environ: dict[str, str]) -> list[str]:
    """The argv of a role, with process counts from the platform's usual variables."""
    values = {
        "port": environ.get("PORT", "8000"),
        "web_processes": environ.get("WEB_CONCURRENCY", "2"),
        "web_connections": environ.get("WEB_CONNECTIONS", "1000"),
        "worker_processes": environ.get("WORKER_PROCESSES", "2"),
        "worker_threads": environ.get("WORKER_THREADS", "8"),
    }
    template = {"web": WEB_COMMAND, "worker": WORKER_COMMAND}[role]
    return template.format(**values).split()


def main(argv: list[str]) -> int:
    role = argv[0] if argv else "all"
    if role == "dramatiq":  # internal: the worker role's command (WORKER_COMMAND)
        return run_dramatiq(argv[1:])
    if role not in ("web", "worker", "all"):
        print("usage: python -m bff.launcher web|worker|all", file=sys.stderr)
        return 2
    settings = load_settings_or_exit()
    if role != "all" and settings.embedded_store:
        print("The embedded store lives in one process: use `python -m bff.launcher all`, or set REDIS_URL.",
              file=sys.stderr)
        return 2
    if role != "all" and settings.bff_sandbox and _expects_own_stand_ins(settings):
        print("In sandbox mode the stand-ins run inside `python -m bff.launcher all`. For separate web and "
              "worker processes, run `python -m sandbox.server` and point TRIPO_API_BASE_URL and "
              "OPENAI_API_BASE_URL at it.", file=sys.stderr)
        return 2
    if role != "all":
        os.execvp(sys.executable, [sys.executable, "-m", *command_for(role, dict(os.environ))])
    stand_ins = _start_stand_ins(settings) if settings.bff_sandbox else None
    try:
        return run_in_process(settings) if settings.embedded_store else run_child_processes(settings)
    finally:
        if stand_ins:
            stand_ins.shutdown()


def _expects_own_stand_ins(settings: Settings) -> bool:
    ports = {urlparse(url).port for url in (settings.tripo_api_base_url, settings.openai_api_base_url)}
    return settings.bff_sandbox_port in ports


def run_dramatiq(arguments: list[str]) -> int:
    """Dramatiq's command line in this process, after logging is set up: Dramatiq's main
    process (its boot line, its signal lines) then logs JSON like everything else."""
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    from .logs import configure_logging

    settings = load_settings_or_exit()
    configure_logging(settings.bff_log_level, settings.secrets())
    return dramatiq_main(make_argument_parser().parse_args(arguments))


def run_child_processes(settings: Settings) -> int:
    environ = dict(os.environ)
    children = [
        subprocess.Popen([sys.executable, "-m", *command_for(role, environ)], env=environ)
        for role in ("web", "worker")
    ]
    _print_banner(settings, environ)
    stopping = threading.Event()

    def stop_on_sigterm(*_):
        # Only signal here: reaping belongs to the main flow, which is blocked in waitid.
        stopping.set()
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        _wait_for_a_child_to_exit()
    except KeyboardInterrupt:
        stopping.set()
    roles = dict(zip(children, ("web", "worker"), strict=True))
    first_exited = next((child for child in children if child.poll() is not None), None)
    _stop(children)
    if stopping.is_set() or first_exited is None:
        return 0
    print(f"the {roles[first_exited]} role exited with code {first_exited.returncode}; stopping the rest",
          file=sys.stderr)
    return first_exited.returncode or 1


def run_in_process(settings: Settings) -> int:
    """Web server, Dramatiq worker threads and the poller in this process."""
    import dramatiq
    from werkzeug.serving import make_server

    import workers.actors  # noqa: F401  (sets up the broker on the embedded store)
    from bff.web import create_app

    environ = dict(os.environ)
    worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=int(environ.get("WORKER_THREADS", "8")))
    worker.start()
    server = make_server("0.0.0.0", int(environ.get("PORT", "8000")), create_app(settings), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    _print_banner(settings, environ)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    worker.stop()
    return 0


def _start_stand_ins(settings: Settings):
    from sandbox.app import create_sandbox_app
    from sandbox.server import serve_in_thread

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # per-request lines would drown the BFF's own

    app = create_sandbox_app(
        tripo_api_key=settings.tripo_api_key,
        openai_api_key=settings.openai_api_key,
        task_seconds=settings.bff_sandbox_task_seconds,
        url_ttl_seconds=settings.tripo_url_ttl_seconds,
    )
    return serve_in_thread(app, "127.0.0.1", settings.bff_sandbox_port)


def _wait_for_a_child_to_exit() -> None:
    """Block until a child exits, without reaping it (Popen does that)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass  # every child is already gone


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def _print_banner(settings: Settings, environ: dict[str, str]) -> None:
    base = f"http://localhost:{environ.get('PORT', '8000')}"
    if settings.bff_sandbox:
        mode = f"SANDBOX: provider stand-ins at http://127.0.0.1:{settings.bff_sandbox_port}, no keys, no cost"
    else:
        mode = "LIVE: real provider calls, real money"
    if settings.embedded_store:
        mode += "; embedded store: tasks are lost when this process stops"
    print(f"\nmakeit3d BFF starting ({mode})\n  API:        {base}\n  Swagger UI: {base}/docs\n"
          f"{_sign_in_line(settings)}  Ctrl-C stops everything.\n", flush=True)


def _sign_in_line(settings: Settings) -> str:
    if settings.uses_sandbox_issuer:
        return (f"  Sign-in:    API calls need a user token from the local issuer at {settings.bff_auth_issuer}:\n"
                f"              curl -s -X POST {settings.bff_auth_issuer}/token -H 'Content-Type: application/json' "
                "-d '{\"user\": \"alice\"}'\n")
    if settings.bff_auth_issuer:
        return f"  Sign-in:    user tokens from {settings.bff_auth_issuer}\n"
    return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
