"""Drive the BFF over HTTP the way the mobile app does, and check what comes back.

    python scripts/demo.py [--base-url http://localhost:8000] [--api-key KEY]
                           [--token-url URL | --token TOKEN [--token TOKEN]]

For each generation flow, and for a USDZ and an STL converted from the first model:
submit, poll the status (printing progress), download every result, check each file (a
GLB header, a decodable PNG, a USDZ whose first file is a USD layer, an STL of the size
its triangle count says), and print a summary. Then, when the BFF signs users in, a
second user checks that neither user can see the other's task. Exits non-zero if any
flow fails. Works against any running BFF; in sandbox mode it costs nothing, against
live providers every flow is billed.

Whether user tokens are needed is read from the BFF's OpenAPI spec. In sandbox mode the
demo gets them for test users "alice" and "bob" from the sandbox's local issuer
(--token-url); against a real sign-in provider, pass the users' tokens with --token.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import time
import zipfile
from collections.abc import Callable

import requests

SAMPLE_IMAGE_URL = "https://cdn.makeit3d.app/samples/robot-front.png"
SANDBOX_TOKEN_URL = "http://127.0.0.1:8765/auth/token"
USERS = ("alice", "bob")
POLL_SECONDS = 2.0
TIMEOUT_SECONDS = 600.0


class DemoFailure(Exception):
    pass


def check_glb(data: bytes) -> str:
    if len(data) < 12:
        raise DemoFailure("model file too short for a GLB")
    magic, version, length = struct.unpack_from("<4sII", data)
    if magic != b"glTF" or version != 2 or length != len(data):
        raise DemoFailure(f"not a GLB 2.0 file (magic {magic!r}, version {version}, length {length})")
    return f"GLB 2.0, {len(data)} bytes"


USD_LAYER_EXTENSIONS = (".usda", ".usdc", ".usd")
STL_HEADER_BYTES = 84  # 80 bytes of header, then the triangle count
STL_TRIANGLE_BYTES = 50


def check_usdz(data: bytes) -> str:
    """A USDZ is a zip whose first file is the USD layer (what AR Quick Look opens)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            names = package.namelist()
    except zipfile.BadZipFile:
        raise DemoFailure("not a USDZ: not a zip archive") from None
    if not names or not names[0].lower().endswith(USD_LAYER_EXTENSIONS):
        raise DemoFailure(f"not a USDZ: its first file is {names[:1]}, not a USD layer")
    return f"USDZ, {len(data)} bytes, layer {names[0]}"


def check_stl(data: bytes) -> str:
    """A binary STL's size is exactly its header plus 50 bytes per triangle; an ASCII STL
    (which some exporters write) ends its solid."""
    if len(data) >= STL_HEADER_BYTES:
        triangles = struct.unpack_from("<I", data, 80)[0]
        if len(data) == STL_HEADER_BYTES + STL_TRIANGLE_BYTES * triangles:
            return f"binary STL, {triangles} triangles"
    if data.lstrip().startswith(b"solid") and b"endsolid" in data[-1024:]:
        return f"ASCII STL, {len(data)} bytes"
    raise DemoFailure(f"not an STL: {len(data)} bytes is not {STL_HEADER_BYTES} + {STL_TRIANGLE_BYTES} x triangles")


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def sample_sketch() -> bytes:
    """A small drawing to upload: a robot's head in a few strokes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (512, 512), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((156, 156, 356, 356), outline="black", width=8)
    draw.ellipse((196, 216, 236, 256), outline="black", width=6)
    draw.ellipse((276, 216, 316, 256), outline="black", width=6)
    draw.line((206, 306, 306, 306), fill="black", width=6)
    draw.line((256, 156, 256, 96), fill="black", width=6)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def check_png(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.format != "PNG":
            raise DemoFailure(f"expected a PNG, got {image.format}")
        return f"PNG {image.width}x{image.height}"


MODEL_DOWNLOADS = (("result_url", check_glb), ("preview_url", check_png))


class Demo:
    """The flows, in the order the app uses them; refine and the conversions work on the
    first flow's draft."""

    def __init__(self, base_url: str, image_url: str, session: requests.Session):
        self.base_url = base_url
        self.image_url = image_url
        self.session = session
        self.draft_task_id: str | None = None

    def flows(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("text-to-model (draft)", self.text_to_model),
            ("sketch-to-model", lambda: self.model("/generate/sketch-to-model", {"image_url": self.image_url})),
            ("image-to-model (multiview)", lambda: self.model(
                "/generate/image-to-model", {"image_urls": [self.image_url, None, self.image_url]})),
            ("refine-model", self.refine),
            ("convert-model (usdz, for AR)", lambda: self.convert("usdz", check_usdz)),
            ("convert-model (stl, for printing)", lambda: self.convert("stl", check_stl)),
            ("image-to-image", self.image_to_image),
        ]

    def text_to_model(self) -> str:
        body = {"prompt": "a friendly dragon sitting on a treasure chest", "style": "toy", "texture": False}
        self.draft_task_id, summary = self.run("/generate/text-to-model", body, MODEL_DOWNLOADS)
        return summary

    def refine(self) -> str:
        if not self.draft_task_id:
            raise DemoFailure("no completed draft to refine")
        return self.model("/generate/refine-model", {"draft_model_task_id": self.draft_task_id})

    def convert(self, format_name: str, check: Callable[[bytes], str]) -> str:
        if not self.draft_task_id:
            raise DemoFailure("no completed model to convert")
        body = {"model_task_id": self.draft_task_id, "format": format_name}
        return self.run("/generate/convert-model", body, (("result_url", check),))[1]

    def model(self, path: str, body: dict) -> str:
        return self.run(path, body, MODEL_DOWNLOADS)[1]

    def image_to_image(self) -> str:
        form = {"prompt": "a cute robot toy, front view", "style": "cartoon", "n": "2", "size": "1024x1024"}
        files = {"image": ("sketch.png", sample_sketch(), "image/png")}
        return self.run("/generate/image-to-image", form, (("result_urls", check_png),), files=files)[1]

    def run(self, path: str, body: dict, downloads, files: dict | None = None) -> tuple[str, str]:
        if files:
            accepted = self.session.post(f"{self.base_url}{path}", data=body, files=files, timeout=60)
        else:
            accepted = self.session.post(f"{self.base_url}{path}", json=body, timeout=30)
        if accepted.status_code not in (200, 202):  # 200: a conversion the model already had
            raise DemoFailure(f"submit answered {accepted.status_code}: {accepted.text[:300]}")
        task = accepted.json()
        print(f"[{path}] task {task['task_id']} accepted")
        status = wait_for_end(self.session, task["status_url"], path)
        if status["status"] != "completed":
            raise DemoFailure(f"task failed: {status['error']}")
        checks = [download_and_check(self.session, url, check)
                  for field, check in downloads for url in as_list(status[field])]
        return task["task_id"], "; ".join(checks)


def needs_user_tokens(base_url: str) -> bool:
    """Whether the BFF asks for sign-in tokens: its spec declares the bearer scheme."""
    spec = requests.get(f"{base_url}/openapi.json", timeout=30).json()
    return "BearerAuth" in spec.get("components", {}).get("securitySchemes", {})


def sandbox_token(token_url: str, user: str) -> str:
    """A sign-in token for a test user, from the sandbox's local issuer."""
    try:
        response = requests.post(token_url, json={"user": user}, timeout=30)
    except requests.RequestException as error:
        raise DemoFailure(f"could not reach the sign-in issuer at {token_url} ({type(error).__name__}); "
                          "outside the sandbox, pass --token") from None
    if response.status_code != 200:
        raise DemoFailure(f"the sign-in issuer answered {response.status_code}: {response.text[:200]}")
    return response.json()["access_token"]


def session_for(api_key: str | None, token: str | None) -> requests.Session:
    session = requests.Session()
    if api_key:
        session.headers["X-API-Key"] = api_key
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def each_user_sees_only_their_own_tasks(base_url: str, alice: requests.Session, bob: requests.Session,
                                        alices_task_id: str | None) -> str:
    """Bob starts a task of his own; each user gets 404 for the other's task."""
    if not alices_task_id:
        raise DemoFailure("the first user has no task to look for")
    accepted = bob.post(f"{base_url}/generate/text-to-model", json={"prompt": "a small teapot", "texture": False},
                        timeout=30)
    if accepted.status_code != 202:
        raise DemoFailure(f"the second user's submit answered {accepted.status_code}: {accepted.text[:300]}")
    bobs_task_id = accepted.json()["task_id"]
    seen = {(who, whose): session.get(f"{base_url}/tasks/{task_id}/status?service=tripo", timeout=30).status_code
            for who, session in (("alice", alice), ("bob", bob))
            for whose, task_id in (("alice", alices_task_id), ("bob", bobs_task_id))}
    expected = {("alice", "alice"): 200, ("alice", "bob"): 404, ("bob", "alice"): 404, ("bob", "bob"): 200}
    if seen != expected:
        raise DemoFailure(f"status codes (user, task owner): {seen}, expected {expected}")
    return "each user sees their own task; the other's is 404"


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


def user_tokens(base_url: str, args: argparse.Namespace) -> list[str]:
    """The users' tokens: as given, or from the sandbox issuer when the BFF asks for them."""
    if args.token or not needs_user_tokens(base_url):
        return args.token
    return [sandbox_token(args.token_url, user) for user in USERS]


def outcome(name: str, flow: Callable[[], str]) -> tuple[str, bool, str]:
    try:
        return name, True, flow()
    except (DemoFailure, requests.RequestException, ValueError, KeyError) as error:
        return name, False, str(error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://localhost:8000")
    parser.add_argument("--api-key", help="the client key, when the BFF has BFF_API_KEYS set")
    parser.add_argument("--token-url", default=SANDBOX_TOKEN_URL,
                        help="where to get test users' sign-in tokens (the sandbox's local issuer)")
    parser.add_argument("--token", action="append", default=[],
                        help="a user's sign-in token, instead of --token-url; twice for the two-user check")
    parser.add_argument("--image-url", default=SAMPLE_IMAGE_URL,
                        help="a public https image for the image flows (the sandbox does not fetch it)")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    try:
        tokens = user_tokens(base_url, args)
    except (DemoFailure, requests.RequestException, ValueError) as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 1
    alice = session_for(args.api_key, tokens[0] if tokens else None)
    demo = Demo(base_url, args.image_url, alice)
    results = [outcome(name, flow) for name, flow in demo.flows()]
    if len(tokens) == 2:
        bob = session_for(args.api_key, tokens[1])
        results.append(outcome("two users", lambda: each_user_sees_only_their_own_tasks(
            base_url, alice, bob, demo.draft_task_id)))
    else:
        print(f"\nThe two-user check needs two users' tokens ({len(tokens)} here): skipped.")
    print("\nSummary")
    for name, ok, detail in results:
        print(f"  {'OK  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
