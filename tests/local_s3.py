"""A local S3 for tests: moto's S3 app served over HTTP on 127.0.0.1 and a free port.

A pytest plugin (``tests/conftest.py`` loads it); its fixtures:

- ``local_s3``: the server, one per test module, with an admin client for assertions. It can
  be stopped and started again on the same port (``stop``/``start``): moto keeps its data
  in this process, so the objects survive, as a real bucket's survive an outage.
- ``aws_env``: fake credentials in the environment, and nothing from the developer's
  ``~/.aws`` or the instance metadata service;
- ``bucket``: a new, empty bucket per test, with ``aws_env`` in force.

moto (5.2) checks neither signatures nor the expiry of signed links. The server refuses a
signed link once ``X-Amz-Date`` + ``X-Amz-Expires`` has passed, with S3's own 403 answer,
on a clock a test can move forward (``advance_clock``); everything else is moto's.
moto and boto3 are imported only when a fixture is used.
"""

from __future__ import annotations

import calendar
import secrets
import threading
import time
import urllib.parse

import pytest

from tests.redis_server import free_port

ACCESS_KEY_ID = "AKIATESTSTORAGE00000"
SECRET_ACCESS_KEY = "test-secret-access-key-0123456789"
REGION = "us-east-1"

_EXPIRED = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")


class ExpiringLinks:
    """WSGI middleware: S3's refusal of a signed link past its expiry."""

    def __init__(self, app, clock) -> None:
        self._app = app
        self._clock = clock

    def __call__(self, environ, start_response):
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if "X-Amz-Expires" in query and "X-Amz-Date" in query:
            signed_at = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
            if self._clock() > signed_at + int(query["X-Amz-Expires"][0]):
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [_EXPIRED]
        return self._app(environ, start_response)


class LocalS3:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.clock_offset = 0.0
        self._server = None
        self._thread: threading.Thread | None = None
        self.admin = self._admin_client()

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = ExpiringLinks(DomainDispatcherApplication(create_backend_app), lambda: time.time() + self.clock_offset)
        self._server = make_server("127.0.0.1", self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-s3", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering: connections to the port are refused until ``start``."""
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    def new_bucket(self) -> str:
        name = f"results-{secrets.token_hex(6)}"
        self.admin.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        return [item["Key"] for item in self.admin.list_objects_v2(Bucket=bucket).get("Contents", [])]

    def uploads_in_progress(self, bucket: str) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        return [upload["Key"] for upload in self.admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    def get(self, bucket: str, key: str) -> dict:
        return self.admin.get_object(Bucket=bucket, Key=key)

    def _admin_client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(signature_version="s3v4", retries={"mode": "standard", "total_max_attempts": 1}),
        )


@pytest.fixture(scope="module")
def local_s3():
    server = LocalS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(local_s3, aws_env) -> str:
    return local_s3.new_bucket()
