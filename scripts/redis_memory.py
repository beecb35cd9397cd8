"""Redis memory per image-to-image task, with and without object storage.

    .venv/bin/python scripts/redis_memory.py [--tasks 20 100] [--images 2]

Runs image tasks to completion through the real app and worker code (the worker's step in
this thread) against the OpenAI stand-in, on a private Redis, first with results kept in a
local S3 (moto's server on loopback), then without storage, and prints how much Redis's
``used_memory`` grew. The sketch is 1024 px of noise, so the stand-in's images are PNGs of
about 1.5 MB, the size of real ones. Needs redis-server on the PATH; touches no other Redis.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from sandbox.openai import create_openai_app  # noqa: E402
from sandbox.server import serve_in_thread  # noqa: E402
from tests.local_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalS3  # noqa: E402
from tests.redis_server import PrivateRedis  # noqa: E402

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    redis_server, local_s3 = PrivateRedis(), LocalS3()
    redis_server.start()
    local_s3.start()
    stand_in = serve_in_thread(create_openai_app(api_key="sk-memory"))
    os.environ.update(REDIS_URL=redis_server.url, TRIPO_API_KEY="tsk_memory", OPENAI_API_KEY="sk-memory",
                      OPENAI_API_BASE_URL=f"{stand_in.base_url}/v1", BFF_LOG_LEVEL="WARNING",
                      BFF_OPENAI_REQUESTS_PER_MINUTE="1000000", BFF_OPENAI_TASKS_PER_MINUTE="1000000",
                      AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY, AWS_REGION="auto",
                      BFF_S3_ENDPOINT_URL=local_s3.endpoint_url, BFF_ALLOW_ANONYMOUS="true")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per stand-in request would drown the table
    try:
        print(f"| image tasks ({args.images} images each) | Redis growth with storage | without storage |")
        print("|---|---|---|")
        for tasks in args.tasks:
            with_storage = grown(tasks, args.images, f"s3://{local_s3.new_bucket()}")
            without = grown(tasks, args.images, None)
            print(f"| {tasks} | {with_storage / 1024:.0f} KiB ({with_storage / tasks / 1024:.1f} KiB a task) "
                  f"| {without / MIB:.1f} MiB ({without / tasks / MIB:.2f} MiB a task) |")
    finally:
        stand_in.shutdown()
        local_s3.stop()
        redis_server.remove()


def grown(tasks: int, images: int, storage_url: str | None) -> int:
    """Bytes of Redis memory that ``tasks`` completed image tasks hold, on an empty Redis."""
    import dataclasses

    import redis

    import workers.actors  # noqa: F401  (sets up the worker runtime)
    from bff.settings import Settings
    from bff.web import create_app
    from workers import runtime
    from workers.submission import submit

    settings = dataclasses.replace(Settings.from_env(), bff_storage_url=storage_url)
    worker_runtime = runtime.WorkerRuntime.build(settings)
    client = create_app(settings).test_client()
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    store.flushdb()
    sketch = _noise_png(1024)

    def run_task() -> None:
        form = {"image": (io.BytesIO(sketch), "sketch.png"), "prompt": "a robot toy", "n": str(images)}
        task_id = client.post("/generate/image-to-image", data=form).get_json()["task_id"]
        submit(worker_runtime, task_id)
        status = client.get(f"/tasks/{task_id}/status?service=openai").get_json()["status"]
        assert status == "completed", status

    run_task()  # not counted: the first task also creates the queues, indexes and scripts every task shares
    before = store.info("memory")["used_memory"]
    for _ in range(tasks):
        run_task()
    return store.info("memory")["used_memory"] - before


def _noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
