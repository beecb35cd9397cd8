"""ObjectStore against a real S3 endpoint (moto's server on loopback), with sources served
over real HTTP: the Tripo stand-in's signed output links, and a small source app for sizes,
statuses and slow answers."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
import urllib.parse

import pytest
import requests
from flask import Flask, Response, abort, request

from bff.results import object_store
from bff.results.locations import parse_storage_url
from bff.results.object_store import ObjectStore, SourceUnavailable, StorageUnavailable, StoredFileRejected
from sandbox import assets
from sandbox.server import serve_in_thread
from sandbox.tripo import create_tripo_app
from tests.redis_server import free_port

MB = 1024 * 1024
TRIPO_KEY = "tsk_storage_test"


def fake_glb(size: int, declared: int | None = None) -> bytes:
    """A GLB of ``size`` bytes whose header states ``declared`` (default: the true size)."""
    header = b"glTF" + struct.pack("<II", 2, size if declared is None else declared)
    return header + os.urandom(size - len(header))


# --- sources ------------------------------------------------------------------------------


class Source:
    """A file server on loopback: /file/NAME (with Content-Length), /stream/NAME (chunked,
    no length), /status/CODE, /trickle (a GLB header, then a byte every 50 ms)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.authorization_headers: list[str | None] = []
        self.stop_trickling = threading.Event()
        app = Flask("source")

        @app.before_request
        def record():
            self.authorization_headers.append(request.headers.get("Authorization"))

        @app.get("/file/<name>")
        def whole(name):
            return Response(self._file(name), mimetype="application/octet-stream")

        @app.get("/stream/<name>")
        def streamed(name):
            data = self._file(name)
            pieces = (data[offset:offset + 256 * 1024] for offset in range(0, len(data), 256 * 1024))
            return Response(pieces, mimetype="application/octet-stream")

        @app.get("/status/<int:code>")
        def status(code):
            return Response("<Error><Code>NoSuchKey</Code></Error>", status=code, mimetype="application/xml")

        @app.get("/trickle")
        def trickle():
            def body():
                yield b"glTF" + struct.pack("<II", 2, 1000)
                while not self.stop_trickling.wait(0.05):
                    yield b"x"
            return Response(body(), mimetype="application/octet-stream")

        self.server = serve_in_thread(app)

    def _file(self, name: str) -> bytes:
        if name not in self.files:
            abort(404)
        return self.files[name]

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    def serve(self, name: str, data: bytes, chunked: bool = False) -> str:
        self.files[name] = data
        return self.url(f"/{'stream' if chunked else 'file'}/{name}")


@pytest.fixture(scope="module")
def source():
    running = Source()
    yield running
    running.stop_trickling.set()
    running.server.shutdown()


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def tripo():
    """The Tripo stand-in: finished tasks' outputs are real GLB/PNG files behind links that
    expire after 60 s of its clock."""
    clock = Clock()
    app = create_tripo_app(api_key=TRIPO_KEY, task_seconds=1, url_ttl_seconds=60, clock=clock)
    server = serve_in_thread(app)
    yield server, app.extensions["tripo_sandbox"], clock
    server.shutdown()


def tripo_outputs(tripo) -> dict:
    server, _, clock = tripo
    api = f"{server.base_url}/v3"
    headers = {"Authorization": f"Bearer {TRIPO_KEY}"}
    created = requests.post(f"{api}/generation/text-to-model", json={"prompt": "a chair", "model": "v3.1-20260211"},
                            headers=headers, timeout=5)
    task_id = created.json()["data"]["task_id"]
    clock.now += 2
    return requests.get(f"{api}/tasks/{task_id}", headers=headers, timeout=5).json()["data"]["output"]


# --- stores -------------------------------------------------------------------------------


@pytest.fixture
def store(local_s3, bucket) -> ObjectStore:
    # region "auto", as R2 and Railway use.
    return ObjectStore(f"s3://{bucket}/bff", endpoint_url=local_s3.endpoint_url, region="auto",
                       connect_timeout=1, read_timeout=5, max_attempts=2)


def unreachable_store(endpoint_url: str, **options) -> ObjectStore:
    settings = {"region": "auto", "connect_timeout": 1, "read_timeout": 1, "max_attempts": 2, **options}
    return ObjectStore("s3://results", endpoint_url=endpoint_url, **settings)


def refusal(store: ObjectStore, url: str, *, expected: str | tuple[str, ...], max_bytes: int) -> StoredFileRejected:
    """How ``put_from_url`` refuses the file at ``url``."""
    with pytest.raises(StoredFileRejected) as refused:
        store.put_from_url(store.new_key("task-1", "model"), url, expected=expected, max_bytes=max_bytes,
                           timeout_seconds=30)
    return refused.value


def assert_nothing_left(local_s3, bucket: str) -> None:
    assert local_s3.keys(bucket) == []
    assert local_s3.uploads_in_progress(bucket) == []


# --- settings and keys ----------------------------------------------------------------------


def test_storage_url_gives_bucket_and_prefix():
    assert parse_storage_url("s3://my-results") == ("my-results", "")
    assert parse_storage_url("s3://my-results/") == ("my-results", "")
    assert parse_storage_url("s3://my.results/bff/prod/") == ("my.results", "bff/prod")


@pytest.mark.parametrize("url", [
    "https://my-results", "my-results", "s3://", "s3://My_Results", "s3://ab", "s3://bucket:9000",
    "s3://bucket?region=eu", "s3://bucket/a//b", "s3://bucket/../b", "s3://AKIAXX:hunter2secret@bucket",
])
def test_malformed_storage_urls_are_refused_without_echoing_them(url):
    with pytest.raises(ValueError, match=r"s3://BUCKET or s3://BUCKET/PREFIX") as refused:
        parse_storage_url(url)
    assert "hunter2secret" not in str(refused.value)


def test_keys_are_unique_and_cannot_be_derived_from_the_task_id(local_s3, aws_env):
    store = ObjectStore("s3://results/bff", endpoint_url=local_s3.endpoint_url, region="auto")
    keys = [store.new_key("task-1", "model.glb") for _ in range(1000)]
    assert len(set(keys)) == 1000
    prefix, results, task_id, secret, name = keys[0].split("/")
    assert (prefix, results, task_id, name) == ("bff", "results", "task-1", "model.glb")
    assert len(secret) >= 32  # token_urlsafe(24): 192 random bits
    assert ObjectStore("s3://results", endpoint_url=None).new_key("t", "a.png").startswith("results/t/")
    for bad_name in ("", "../model.glb", "a/b.glb", ".hidden", "model glb"):
        with pytest.raises(ValueError):
            store.new_key("task-1", bad_name)


# --- put, sign, delete ------------------------------------------------------------------------


def test_stored_bytes_come_back_through_a_signed_link_and_from_get_bytes(store, local_s3, bucket):
    key = store.new_key("task-1", "model.glb")
    data = assets.plain_glb()
    store.put_bytes(key, data, "model/gltf-binary")

    download = requests.get(store.signed_url(key), timeout=5)  # a plain client, as the app's would be
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["Content-Type"] == "model/gltf-binary"
    assert store.get_bytes(key) == data
    assert store.get_bytes(store.new_key("task-1", "never-stored.glb")) is None
    assert local_s3.keys(bucket) == [key]


def test_a_quick_put_stores_the_bytes_too(store, local_s3, bucket):
    key = store.new_key("task-1", "image-0.png", folder="uploads")
    store.put_bytes(key, assets.preview_png(), "image/png", quick=True)
    assert key.startswith("bff/uploads/task-1/")
    assert local_s3.get(bucket, key)["Body"].read() == assets.preview_png()


def test_a_signed_link_is_refused_once_it_has_expired(store, local_s3, bucket):
    key = store.new_key("task-1", "preview.png")
    store.put_bytes(key, assets.preview_png(), "image/png")
    link = store.signed_url(key)
    local_s3.advance_clock(store.link_seconds + 1)
    try:
        expired = requests.get(link, timeout=5)
    finally:
        local_s3.advance_clock(-store.link_seconds - 1)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    assert requests.get(link, timeout=5).status_code == 200  # within its lifetime, the same link works


def test_links_are_signed_without_a_request_and_live_link_seconds(aws_env):
    # Nothing listens there: signing must not need the storage.
    store = unreachable_store(f"http://127.0.0.1:{free_port()}", link_seconds=120)
    before = time.time()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(store.signed_url("bff/results/t/x/model.glb")).query)
    # moto does not enforce the expiry of signed links; S3, R2 and Railway refuse a link
    # once X-Amz-Date + X-Amz-Expires has passed.
    assert query["X-Amz-Expires"] == ["120"]
    signed_at = time.mktime(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) - time.timezone
    assert before - 2 <= signed_at <= time.time() + 1
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].split("/")[2] == "auto"


def test_discard_removes_the_object_and_never_raises(store, local_s3, bucket, aws_env):
    key = store.new_key("task-1", "preview.png")
    store.put_bytes(key, assets.preview_png(), "image/png")
    store.discard(key)
    assert local_s3.keys(bucket) == []
    store.discard(key)  # already gone: still fine
    unreachable_store(f"http://127.0.0.1:{free_port()}").discard(key)  # no storage: still no error


def test_ping_answers_for_a_bucket_and_refuses_a_missing_one(store, local_s3, aws_env):
    store.ping()
    missing = ObjectStore("s3://no-such-bucket-here", endpoint_url=local_s3.endpoint_url, region="auto")
    with pytest.raises(StorageUnavailable, match="HeadBucket.*404"):
        missing.ping()


# --- put_from_url ---------------------------------------------------------------------------


def test_tripo_outputs_are_copied_with_their_content_types(store, tripo, local_s3, bucket):
    outputs = tripo_outputs(tripo)
    model_key, preview_key = store.new_key("task-1", "model.glb"), store.new_key("task-1", "preview.png")

    model_stored = store.put_from_url(model_key, outputs["model_url"], expected="glb", max_bytes=10 * MB,
                                      timeout_seconds=10)
    preview_stored = store.put_from_url(preview_key, outputs["rendered_image_url"], expected=("jpeg", "webp", "png"),
                                        max_bytes=10 * MB, timeout_seconds=10)

    model = local_s3.get(bucket, model_key)
    assert model["ContentType"] == "model/gltf-binary"
    assert model["Body"].read() == requests.get(outputs["model_url"], timeout=5).content
    assert model_stored == (model["ContentLength"], "glb")
    assert preview_stored.kind == "png"
    assert local_s3.get(bucket, preview_key)["ContentType"] == "image/png"
    file_requests = [entry for entry in tripo[1].requests if entry.path.startswith("/files/")]
    assert file_requests and all("Authorization" not in entry.headers for entry in file_requests)


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
def test_a_large_file_is_streamed_in_parts_intact(store, source, local_s3, bucket, chunked):
    data = fake_glb(20 * MB + 123)
    key = store.new_key("task-1", "model.glb")
    stored = store.put_from_url(key, source.serve("large.glb", data, chunked=chunked), expected="glb",
                                max_bytes=30 * MB, timeout_seconds=30)
    assert stored.size == len(data)
    stored = local_s3.get(bucket, key)
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert len(stored["ETag"].strip('"').split("-")) == 2  # a multipart upload's ETag: "md5-parts"
    assert source.authorization_headers[-1] is None


@pytest.mark.parametrize("size, max_bytes, chunked", [
    (5_000, 4_000, True),  # found while reading, before a single PUT
    (20 * MB, 10 * MB, True),  # found while reading, after parts were uploaded
    (20 * MB, 10 * MB, False),  # declared by Content-Length: refused before reading
], ids=["small", "multipart", "declared"])
def test_a_file_over_the_cap_is_refused_and_nothing_is_left(store, source, local_s3, bucket, size, max_bytes,
                                                            chunked):
    url = source.serve(f"big-{size}.glb", fake_glb(size), chunked=chunked)
    refused = refusal(store, url, expected="glb", max_bytes=max_bytes)
    assert refused.reason == object_store.TOO_LARGE
    assert_nothing_left(local_s3, bucket)


def test_a_file_of_another_kind_is_refused_before_anything_is_stored(store, source, local_s3, bucket):
    url = source.serve("preview.png", assets.preview_png())
    refused = refusal(store, url, expected="glb", max_bytes=MB)
    assert refused.reason == object_store.WRONG_KIND
    assert_nothing_left(local_s3, bucket)


def test_of_several_kinds_the_one_a_small_file_starts_like_is_checked_to_its_end(store, source, local_s3, bucket):
    url = source.serve("cut.png", assets.preview_png()[:-20])  # all of it fits in the first read
    refused = refusal(store, url, expected=("jpeg", "png"), max_bytes=MB)
    assert refused.reason == object_store.WRONG_KIND and "complete png" in refused.detail
    assert_nothing_left(local_s3, bucket)


def test_a_file_found_bad_at_its_end_is_never_completed(store, source, local_s3, bucket):
    # Its header promises 30 MB; the body stops at 20 MB, after parts were uploaded.
    url = source.serve("cut.glb", fake_glb(20 * MB, declared=30 * MB), chunked=True)
    refused = refusal(store, url, expected="glb", max_bytes=40 * MB)
    assert refused.reason == object_store.WRONG_KIND
    assert_nothing_left(local_s3, bucket)


def test_an_expired_or_missing_source_is_refused(store, source, tripo, local_s3, bucket):
    outputs = tripo_outputs(tripo)
    tripo[2].now += 61  # past the stand-in's 60 s link lifetime: it answers 403
    for url in (outputs["model_url"], source.url("/file/never-served.glb")):
        refused = refusal(store, url, expected="glb", max_bytes=MB)
        assert refused.reason == object_store.SOURCE_REFUSED
        assert "signature" not in str(refused)
    assert_nothing_left(local_s3, bucket)


def test_a_failing_source_may_be_retried(store, source, local_s3, bucket):
    with pytest.raises(SourceUnavailable) as failed:
        store.put_from_url(store.new_key("task-1", "model.glb"), source.url("/status/503"), expected="glb",
                           max_bytes=MB, timeout_seconds=10)
    assert failed.value.reason == object_store.SOURCE_FAILED
    closed = f"http://127.0.0.1:{free_port()}/model.glb?signature=secret-sig"
    with pytest.raises(SourceUnavailable) as failed:
        store.put_from_url(store.new_key("task-1", "model.glb"), closed, expected="glb", max_bytes=MB,
                           timeout_seconds=10)
    assert "secret-sig" not in str(failed.value) and failed.value.__suppress_context__
    assert_nothing_left(local_s3, bucket)


def test_a_trickling_source_is_cut_at_the_deadline(store, source, local_s3, bucket):
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as failed:
        store.put_from_url(store.new_key("task-1", "model.glb"), source.url("/trickle"), expected="glb",
                           max_bytes=MB, timeout_seconds=1)
    # Every read returns data in time: only the overall deadline stops it.
    assert failed.value.reason == object_store.SOURCE_TIMEOUT
    assert time.monotonic() - started < 3
    assert_nothing_left(local_s3, bucket)


# --- storage failures -----------------------------------------------------------------------


def test_storage_that_refuses_connections_fails_fast(aws_env, source):
    store = unreachable_store(f"http://127.0.0.1:{free_port()}")
    url = source.serve("small.glb", assets.plain_glb())
    for attempt in (lambda: store.put_bytes("k", b"x", "text/plain"), store.ping,
                    lambda: store.put_from_url("k", url, expected="glb", max_bytes=MB, timeout_seconds=10)):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
            attempt()
        assert time.monotonic() - started < 5  # a bound on retries, not a benchmark


def test_storage_that_never_answers_fails_within_its_timeouts(aws_env):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        store = unreachable_store(f"http://127.0.0.1:{silent.getsockname()[1]}", read_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="ReadTimeoutError"):
            store.put_bytes("k", b"x", "text/plain")
        assert time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.ping()  # one try with the connect timeout: for /readyz
        assert time.monotonic() - started < 2


def test_missing_credentials_make_storage_unavailable(local_s3, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = ObjectStore("s3://results", endpoint_url=local_s3.endpoint_url, region="auto")
    with pytest.raises(StorageUnavailable, match="NoCredentialsError"):
        store.put_bytes("k", b"x", "text/plain")
    with pytest.raises(StorageUnavailable, match="NoCredentialsError"):
        store.signed_url("k")


# --- processes and threads ----------------------------------------------------------------------


def test_many_threads_can_start_using_one_store(store, local_s3, bucket):
    keys = [store.new_key(f"task-{number}", "preview.png") for number in range(8)]
    errors = []

    def put(key):
        try:
            store.put_bytes(key, assets.preview_png(), "image/png")
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=put, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(local_s3.keys(bucket)) == sorted(keys)


def test_a_forked_child_makes_its_own_client_and_both_processes_use_the_store(store, local_s3, bucket):
    store.put_bytes(store.new_key("parent", "warm.txt"), b"x", "text/plain")
    parents_client = store._client()  # with its pooled connections
    child = os.fork()
    if child == 0:  # sharing the parent's sockets would cross the two processes' answers
        try:
            assert store._client() is not parents_client
            for number in range(10):
                store.put_bytes(store.new_key("child", f"{number}.txt"), b"child", "text/plain")
            os._exit(0)
        except BaseException:  # noqa: BLE001 (any failure is the exit code)
            os._exit(1)
    for number in range(10):
        store.put_bytes(store.new_key("parent", f"{number}.txt"), b"parent", "text/plain")
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._client() is parents_client
    assert len([key for key in local_s3.keys(bucket) if "/child/" in key]) == 10
