"""Checking an uploaded image decodes every pixel: up to seconds of CPU, which under gevent
would hold every request of its web process. The check runs off the event loop, so
/healthz keeps answering while large uploads are being checked. The real web role, as one
process (with two, /healthz could be answered by the other one)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bff.web.uploads import MAX_SIDE_PIXELS, check_image
from tests.images import encoded, png_claiming_size
from tests.processes.running import start, stop, wait_ready
from tests.redis_server import free_port

UPLOADS = 3  # at once: before the fix each held the process in turn


@pytest.fixture(scope="module")
def largest_image() -> bytes:
    """8192 x 8192 px of one colour: a small file (200 KB) that takes long to decode."""
    return encoded("PNG", (MAX_SIDE_PIXELS, MAX_SIDE_PIXELS))


@pytest.fixture(scope="module")
def one_web_process():
    port = free_port()
    web = start("web", {"PORT": str(port), "WEB_CONCURRENCY": "1", "BFF_OPENAI_REQUESTS_PER_MINUTE": "100"})
    try:
        wait_ready(f"http://127.0.0.1:{port}", web)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(web)


def upload(base_url: str, image: bytes) -> requests.Response:
    return requests.post(f"{base_url}/generate/image-to-image", data={"prompt": "a robot toy"},
                         files={"image": ("sketch.png", image, "image/png")}, timeout=30)


def seconds_to_answer(url: str) -> float:
    started = time.monotonic()
    requests.get(url, timeout=30).raise_for_status()
    return time.monotonic() - started


def test_health_answers_while_large_uploads_are_checked(one_web_process, largest_image):
    started = time.monotonic()
    check_image(largest_image, max_bytes=len(largest_image))
    check_seconds = time.monotonic() - started  # what one check costs on this machine, now

    with ThreadPoolExecutor(UPLOADS) as pool:
        uploads = [pool.submit(upload, one_web_process, largest_image) for _ in range(UPLOADS)]
        health_latencies = []
        while not all(future.done() for future in uploads):
            health_latencies.append(seconds_to_answer(f"{one_web_process}/healthz"))

    assert [future.result().status_code for future in uploads] == [202] * UPLOADS
    assert len(health_latencies) >= UPLOADS  # asked all along the checks
    assert max(health_latencies) < check_seconds / 2, (
        f"/healthz took {max(health_latencies):.2f} s behind uploads whose check takes {check_seconds:.2f} s")


@pytest.mark.parametrize("image, fragment", [
    (encoded("PNG")[:-30], "truncated or corrupt"),
    (png_claiming_size(100_000, 100_000), "too many pixels"),
])
def test_a_refusal_from_the_check_thread_is_the_usual_422(one_web_process, image, fragment):
    response = upload(one_web_process, image)

    assert response.status_code == 422 and fragment in response.json()["message"]
