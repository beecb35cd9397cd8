"""Drive the BFF over HTTP the way the mobile app does, and check what comes back.

    python scripts/demo.py [--base-url http://localhost:8000]

For each generation flow: submit, poll the status (printing progress), download every
result, check each file (a GLB header, a decodable PNG), and print a summary. Exits
non-zero if any flow fails. Works against any running BFF; in sandbox mode it costs
nothing, against live providers every flow is billed.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import time
from dataclasses import dataclass
from typing import Callable

import requests

POLL_SECONDS = 2.0
TIMEOUT_SECONDS = 600.0


class DemoFailure(Exception):
    pass


@dataclass(frozen=True)
class Flow:
    name: str
    path: str
    json_body: dict
    downloads: tuple[tuple[str, Callable[[bytes], str]], ...]  # (status field, checker)


def check_glb(data: bytes) -> str:
    if len(data) < 12:
        raise DemoFailure("model file too short for a GLB")
    magic, version, length = struct.unpack_from("<4sII", data)
    if magic != b"glTF" or version != 2 or length != len(data):
        raise DemoFailure(f"not a GLB 2.0 file (magic {magic!r}, version {version}, length {length})")
    return f"GLB 2.0, {len(data)} bytes"


def check_png(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.format != "PNG":
            raise DemoFailure(f"expected a PNG, got {image.format}")
        return f"PNG {image.width}x{image.height}"


FLOWS = (
    Flow(
        name="text-to-model",
        path="/generate/text-to-model",
        json_body={"prompt": "a friendly dragon sitting on a treasure chest", "style": "toy", "texture": True},
        downloads=(("result_url", check_glb), ("preview_url", check_png)),
    ),
)


def run_flow(session: requests.Session, base_url: str, flow: Flow) -> str:
    accepted = session.post(f"{base_url}{flow.path}", json=flow.json_body, timeout=30)
    if accepted.status_code != 202:
        raise DemoFailure(f"submit answered {accepted.status_code}: {accepted.text[:300]}")
    body = accepted.json()
    print(f"[{flow.name}] task {body['task_id']} accepted")
    status = wait_for_end(session, body["status_url"], flow.name)
    if status["status"] != "completed":
        raise DemoFailure(f"task failed: {status['error']}")
    return "; ".join(download_and_check(session, status[field], check) for field, check in flow.downloads)


def wait_for_end(session: requests.Session, status_url: str, name: str) -> dict:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    last_shown = None
    while time.monotonic() < deadline:
        status = session.get(status_url, timeout=30).json()
        shown = (status["status"], status["progress"])
        if shown != last_shown:
            print(f"[{name}] {status['status']:<10} {status['progress']:>3}%")
            last_shown = shown
        if status["status"] in ("completed", "failed"):
            return status
        time.sleep(POLL_SECONDS)
    raise DemoFailure(f"no result within {TIMEOUT_SECONDS:.0f} s")


def download_and_check(session: requests.Session, url: str | None, check: Callable[[bytes], str]) -> str:
    if not url:
        raise DemoFailure("a completed task without the expected link")
    response = session.get(url, timeout=60)  # follows the BFF's redirect to the file
    if response.status_code != 200:
        raise DemoFailure(f"download answered {response.status_code}")
    return check(response.content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://localhost:8000")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    session = requests.Session()
    results = []
    for flow in FLOWS:
        try:
            results.append((flow.name, True, run_flow(session, base_url, flow)))
        except (DemoFailure, requests.RequestException, ValueError, KeyError) as error:
            results.append((flow.name, False, str(error)))
    print("\nSummary")
    for name, ok, detail in results:
        print(f"  {'OK  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
