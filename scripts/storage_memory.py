"""Memory of ObjectStore.put_from_url: does it stay flat as files grow?

Starts a local S3 (moto's server, in a child process so the objects it keeps are not
counted here) and a source on loopback that generates a GLB of the asked size chunk by
chunk, then copies files of several sizes and prints tracemalloc's peak for each copy.

    .venv/bin/python scripts/storage_memory.py [SIZE_MB ...]    (default: 10 50 100)
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import boto3  # noqa: E402
import requests  # noqa: E402
from flask import Flask, Response  # noqa: E402

from bff.results.object_store import ObjectStore  # noqa: E402
from sandbox.server import serve_in_thread  # noqa: E402
from tests.redis_server import free_port  # noqa: E402

MB = 1024 * 1024
CHUNK = 256 * 1024


def source_app() -> Flask:
    app = Flask("source")

    @app.get("/model/<int:size>.glb")
    def model(size: int):
        def body():
            yield b"glTF" + struct.pack("<II", 2, size)
            sent = 12
            while sent < size:
                piece = min(CHUNK, size - sent)
                yield b"\x00" * piece
                sent += piece
        return Response(body(), mimetype="model/gltf-binary", headers={"Content-Length": str(size)})

    return app


def start_local_s3() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(endpoint, timeout=1)
            return process, endpoint
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


def main(sizes_mb: list[int]) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    os.environ.update(AWS_ACCESS_KEY_ID="memory-test", AWS_SECRET_ACCESS_KEY="memory-test",
                      AWS_EC2_METADATA_DISABLED="true")
    process, endpoint = start_local_s3()
    source = serve_in_thread(source_app())
    try:
        boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="memory")
        store = ObjectStore("s3://memory", endpoint_url=endpoint, region="auto")
        store.put_bytes("warm-up", b"x", "text/plain")  # clients and their imports outside the measure
        print(f"{'file':>8} {'peak traced':>12} {'seconds':>8}")
        for size_mb in sizes_mb:
            size = size_mb * MB
            tracemalloc.start()
            started = time.monotonic()
            stored = store.put_from_url(f"model-{size_mb}.glb", f"{source.base_url}/model/{size}.glb",
                                        expected="glb", max_bytes=size, timeout_seconds=300)
            seconds = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert stored.size == size
            print(f"{size_mb:>5} MB {peak / MB:>9.1f} MB {seconds:>8.1f}")
    finally:
        source.shutdown()
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10, 50, 100])
