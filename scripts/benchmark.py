"""Benchmark: the web role against the floor of Flask plus Redis, and what a poll cycle costs.

    .venv/bin/python scripts/benchmark.py [--seconds 10] [--rounds 3] [--connections 32]
                                          [--only http|poll]

HTTP (needs `wrk` on the PATH: `apt-get install wrk`): the web role as deployed
(``python -m bff.launcher web``: gunicorn, gevent, its processes and connections) with
logging on, sign-in on (a signed token on every request, one user per token), per-user
limits on, runs side by side with a bare Flask app under the same gunicorn settings
(``scripts/bench/floor_app.py``: one GET for a status read; one SET and one RPUSH for a
submission) on the same Redis. Runs alternate between the two, each kind ``--rounds``
times; the medians of throughput and p99 latency are printed with their ratios.

Poll cycle: one cycle (Tripo reads through the stand-in, then reconciliation) with 10
tasks in flight and 100 waiting for capacity, then with 10,000 waiting.

Needs redis-server on the PATH; starts its own private one and touches no other Redis.
Numbers, not assertions: machines differ, so compare ratios on one machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bff.launcher import command_for  # noqa: E402
from sandbox.identity import create_identity_app, standard_claims  # noqa: E402
from sandbox.server import serve_in_thread  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the issuer's request lines
from tests.redis_server import PrivateRedis, free_port  # noqa: E402

AUDIENCE = "makeit3d-benchmark"
LOAD_SCRIPT = ROOT / "scripts" / "bench" / "load.lua"
FLOOR_APP = "scripts.bench.floor_app:app"
# The web role's own settings for its processes, given to both servers.
WEB_PROCESSES = {"WEB_CONCURRENCY": "2", "WEB_CONNECTIONS": "1000"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each server for each kind of request")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (one wrk thread)")
    parser.add_argument("--users", type=int, default=1000, help="signed-in users, each with a token and a task")
    parser.add_argument("--only", choices=("http", "poll"))
    args = parser.parse_args()
    redis_server = PrivateRedis()
    redis_server.start()
    try:
        if args.only != "poll":
            bench_http(redis_server.url, args)
        if args.only != "http":
            bench_poll_cycles(redis_server.url)
    finally:
        redis_server.remove()


# --- HTTP: the web role side by side with the floor --------------------------------------


@dataclass(frozen=True)
class Run:
    requests_per_second: float
    p99_ms: float
    refused: int = 0  # answers that were not 2xx


# Past this share of answers that are not 2xx a run measures the refusals, not the service.
MAX_REFUSED_SHARE = 0.01


def bench_http(redis_url: str, args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("the HTTP benchmark needs wrk on the PATH (Debian: apt-get install wrk)")
    issuer = serve_in_thread(create_identity_app())
    workdir = Path(tempfile.mkdtemp(prefix="bff-benchmark-"))
    bff_port, floor_port = free_port(), free_port()
    environ = _bff_environ(redis_url, issuer.base_url, bff_port)
    servers = [
        _start(command_for("web", environ), environ, workdir / "bff.log"),
        _start(_floor_command(environ, floor_port), environ, workdir / "floor.log"),
    ]
    try:
        _wait_ready(f"http://127.0.0.1:{bff_port}/healthz")
        _wait_ready(f"http://127.0.0.1:{floor_port}/tasks/none/status", expected=404)
        users_file = workdir / "users.txt"
        _prepare_users(issuer, redis_url, f"http://127.0.0.1:{bff_port}", args.users, users_file)
        targets = {"floor": f"http://127.0.0.1:{floor_port}", "bff": f"http://127.0.0.1:{bff_port}"}
        for mode in ("status", "submit"):
            runs = _alternating_runs(targets, mode, users_file, args)
            _report_side_by_side(mode, runs)
        _report_refusals(workdir / "bff.log")
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=40)
        issuer.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


def _bff_environ(redis_url: str, issuer_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ, **WEB_PROCESSES,
        "PORT": str(port), "REDIS_URL": redis_url, "BFF_SANDBOX": "false", "BFF_LOG_LEVEL": "INFO",
        "TRIPO_API_KEY": "tsk_benchmark_key", "OPENAI_API_KEY": "sk-benchmark-key",
        "BFF_AUTH_ISSUER": issuer_url, "BFF_AUTH_AUDIENCE": AUDIENCE,
        # Counted on every request like any limit; high enough that no run is refused.
        "BFF_TRIPO_OTHER_REQUESTS_PER_MINUTE": "1000000",
    }


def _floor_command(environ: dict[str, str], port: int) -> list[str]:
    """The web role's gunicorn command line (worker class, processes, connections,
    timeouts) serving the floor app instead, without the BFF's own gunicorn config."""
    command = command_for("web", {**environ, "PORT": str(port)})
    config = command.index("--config")
    del command[config : config + 2]
    command[command.index("wsgi:app")] = FLOOR_APP
    return command


def _start(command: list[str], environ: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as output:
        return subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, env=environ, stdout=output,
                                stderr=subprocess.STDOUT)


def _wait_ready(url: str, expected: int = 200) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == expected:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer in time")


def _prepare_users(issuer, redis_url: str, bff_url: str, count: int, users_file: Path) -> None:
    """One token and one task per user; the floor gets a copy of each task's status body
    under the same id, so both servers answer the same requests with the same bytes."""
    import redis

    from scripts.bench.floor_app import TASK_PREFIX

    sandbox = issuer.server.app.extensions["identity_sandbox"]
    client = redis.Redis.from_url(redis_url)
    lines = []
    with requests.Session() as session:
        for number in range(count):
            token = sandbox.sign(standard_claims(issuer.base_url, f"user-{number}", audience=AUDIENCE))
            auth = {"Authorization": f"Bearer {token}"}
            accepted = session.post(f"{bff_url}/generate/text-to-model", json={"prompt": "a small robot"},
                                    headers=auth)
            accepted.raise_for_status()
            task_id = accepted.json()["task_id"]
            status = session.get(f"{bff_url}/tasks/{task_id}/status?service=tripo", headers=auth)
            status.raise_for_status()
            client.set(TASK_PREFIX + task_id, status.content)
            lines.append(f"{token} {task_id}\n")
    users_file.write_text("".join(lines))


def _alternating_runs(targets: dict[str, str], mode: str, users_file: Path,
                      args: argparse.Namespace) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {name: [] for name in targets}
    names = list(targets)
    for name in names:  # warm-up: caches, connections, the first token checks
        _wrk(targets[name], mode, users_file, seconds=2, connections=args.connections)
    for round_number in range(args.rounds):
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            runs[name].append(_wrk(targets[name], mode, users_file, args.seconds, args.connections))
    return runs


def _wrk(base_url: str, mode: str, users_file: Path, seconds: int, connections: int) -> Run:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LOAD_SCRIPT),
               base_url, "--", str(users_file), mode]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
    if result["non_2xx"] > MAX_REFUSED_SHARE * result["requests"] or result["socket_errors"]:
        raise SystemExit(f"{base_url} {mode}: {result['non_2xx']} non-2xx answers, "
                         f"{result['socket_errors']} socket errors: the run does not count\n{output}")
    return Run(result["requests"] / (result["duration_us"] / 1e6), result["p99_us"] / 1000, result["non_2xx"])


def _report_side_by_side(mode: str, runs: dict[str, list[Run]]) -> None:
    floor, bff = _median(runs["floor"]), _median(runs["bff"])
    what = {"status": "status read (GET /tasks/{id}/status)",
            "submit": "submission (POST /generate/text-to-model)"}[mode]
    print(f"{what}, median of {len(runs['bff'])} alternating runs:")
    for name, run in (("floor", floor), ("web role", bff)):
        print(f"  {name:9} {run.requests_per_second:8.0f} req/s   p99 {run.p99_ms:7.1f} ms")
    print(f"  ratio     {bff.requests_per_second / floor.requests_per_second:8.2f}x throughput, "
          f"{bff.p99_ms / floor.p99_ms:.2f}x p99")
    for name in runs:
        print(f"    {name} runs: " + ", ".join(f"{run.requests_per_second:.0f}/s p99 {run.p99_ms:.1f} ms"
                                               + (f" ({run.refused} not 2xx)" if run.refused else "")
                                               for run in runs[name]))


def _report_refusals(log: Path) -> None:
    """The web role's answers that were not 2xx, by status, from its access lines."""
    statuses: Counter[int] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if '"bff.access"' in line:
            status = json.loads(line).get("status", 0)
            statuses[status] += not 200 <= status < 300
    refused = {status: count for status, count in statuses.items() if count}
    if refused:
        print(f"web role answers that were not 2xx, by status: {refused}")


def _median(runs: list[Run]) -> Run:
    return Run(statistics.median(run.requests_per_second for run in runs),
               statistics.median(run.p99_ms for run in runs))


# --- Poll cycles --------------------------------------------------------------------------


IN_FLIGHT = 10
WAITING = (100, 10_000)
TRIPO_KEY = "tsk_benchmark_key"


def bench_poll_cycles(redis_url: str) -> None:
    """One poll cycle with IN_FLIGHT tasks running at the Tripo stand-in (capacity full)
    and each number of WAITING tasks queued for capacity."""
    from sandbox.tripo import create_tripo_app

    stand_in = serve_in_thread(create_tripo_app(api_key=TRIPO_KEY, task_seconds=3600))
    os.environ.update(REDIS_URL=redis_url, TRIPO_API_KEY=TRIPO_KEY, OPENAI_API_KEY="sk-benchmark-key",
                      TRIPO_API_BASE_URL=f"{stand_in.base_url}/v3", BFF_LOG_LEVEL="WARNING",
                      BFF_TRIPO_CONCURRENCY=str(IN_FLIGHT), BFF_ALLOW_ANONYMOUS="true")
    try:
        cycles = {waiting: _poll_cycle_seconds(waiting) for waiting in WAITING}
    finally:
        stand_in.shutdown()
    few, many = cycles[WAITING[0]], cycles[WAITING[-1]]
    print(f"poll cycle, {IN_FLIGHT} tasks in flight, median of 10 cycles:")
    for waiting, seconds in cycles.items():
        print(f"  {waiting:6} waiting   {seconds * 1000:7.1f} ms")
    print(f"  ratio     {many / few:.2f}x ({WAITING[-1]} waiting against {WAITING[0]})")


def _poll_cycle_seconds(waiting: int) -> float:
    import redis

    import workers.actors  # noqa: F401  (sets up the worker runtime)
    from tests.helpers import new_text_task
    from workers import runtime
    from workers.polling import poll_cycle
    from workers.reconcile import TIMERS_INDEX_SECONDS
    from workers.submission import submit

    worker_runtime = runtime.current()
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.flushdb()
    for _ in range(IN_FLIGHT + waiting):  # the first ones fill the capacity; the others wait
        submit(worker_runtime, new_text_task(client).id)
    worker_runtime.store.index_timers(TIMERS_INDEX_SECONDS)  # this hour's sweep, not measured
    durations = []
    for _ in range(10):
        started = time.perf_counter()
        poll_cycle(worker_runtime)
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


if __name__ == "__main__":
    main()
