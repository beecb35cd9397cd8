"""Benchmark: how long checking an upload holds a gevent web process's event loop.

    .venv/bin/python scripts/upload_check_stall.py [--runs 3]

Patches the process as the web role does (gevent), then checks the largest images of each
format, on the event loop (``check_image``, as before) and beside it
(``check_image_off_loop``, what the route does), while a greenlet ticks every millisecond.
Prints each check's time and the event loop's longest stall (the worst delay any other
request of the process would see). Numbers, not assertions: compare them on one machine.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bff.web.uploads import MAX_SIDE_PIXELS, check_image, check_image_off_loop  # noqa: E402

MAX_BYTES = 20 * 1024 * 1024


def samples() -> dict[str, bytes]:
    largest = Image.linear_gradient("L").resize((MAX_SIDE_PIXELS, MAX_SIDE_PIXELS)).convert("RGB")
    photo = Image.frombytes("RGB", (4000, 3000), os.urandom(4000 * 3000 * 3))  # 12 Mpx that compresses badly
    return {
        "JPEG 4000x3000 noise": encode(photo, "JPEG", quality=90),
        "PNG 8192x8192": encode(largest, "PNG"),
        "WebP 8192x8192": encode(largest, "WEBP", quality=10, method=0),
    }


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def measure(check: Callable[..., object], data: bytes) -> tuple[float, float]:
    """(the check's seconds, the event loop's longest stall meanwhile)."""
    stalls = [0.0]
    done = False

    def tick() -> None:
        last = time.monotonic()
        while not done:
            gevent.sleep(0.001)
            now = time.monotonic()
            stalls.append(now - last)
            last = now

    ticker = gevent.spawn(tick)
    gevent.sleep(0.01)
    started = time.monotonic()
    check(data, max_bytes=MAX_BYTES)
    seconds = time.monotonic() - started
    done = True
    ticker.join()
    return seconds, max(stalls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, data in samples().items():
        for label, check in (("on the loop", check_image), ("beside it", check_image_off_loop)):
            results = [measure(check, data) for _ in range(args.runs)]
            worst = max(stall for _, stall in results)
            median = sorted(seconds for seconds, _ in results)[len(results) // 2]
            print(f"{name:22} ({len(data) // 1024:5} KB) {label:12}: check {median:.2f} s, longest stall {worst:.3f} s")


if __name__ == "__main__":
    main()
