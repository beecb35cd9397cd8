"""A local S3 for tests: moto's server mode on 127.0.0.1 and a free port.

Import the fixtures into a test module (``from tests.storage_server import local_s3, bucket``):

- ``local_s3``: the server, one per test module, with an admin client for assertions;
- ``aws_env``: fake credentials in the environment, and nothing from the developer's
  ``~/.aws`` or the instance metadata service;
- ``bucket``: a new, empty bucket per test, with ``aws_env`` in force.

moto keeps its data in memory in this process and does not check signatures or the expiry
of signed links (moto 5.2: requests are accepted whatever their signature).
"""

from __future__ import annotations

import secrets

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

ACCESS_KEY_ID = "AKIATESTSTORAGE00000"
SECRET_ACCESS_KEY = "test-secret-access-key-0123456789"
REGION = "us-east-1"


class LocalS3:
    def __init__(self) -> None:
        # moto binds 0.0.0.0 unless told otherwise.
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""
        self.admin = None

    def start(self) -> None:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.admin = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(signature_version="s3v4", retries={"mode": "standard", "total_max_attempts": 1}),
        )

    def stop(self) -> None:
        self._server.stop()

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
