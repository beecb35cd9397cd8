"""Results in object storage: any S3-compatible bucket (Amazon S3, Cloudflare R2, Railway
and Supabase buckets), reached with boto3.

Workers keep every result here before a task becomes completed (``put_from_url`` streams a
provider's file into the bucket, ``put_bytes`` stores one held in memory); the web role
answers a download with a 302 to ``signed_url``, which is signed locally (no request).

Credentials come from boto3's default chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` in the environment, or a role); this module never reads them.

Keys (``new_key``) are ``{prefix}/results/{task_id}/{random}/{name}``: 192 random bits
make them impossible to guess from a task id, while the task id lets an operator find or
delete a task's files by prefix.

Failures are classified in one place (``_classify``) into three exceptions:

- ``StorageUnavailable``: the bucket could not be used (network, timeout, 5xx, missing or
  refused credentials, missing bucket). Nothing is wrong with the file: retry later.
- ``SourceUnavailable``: the source failed in a way that may pass (network, timeout, its
  overall deadline, HTTP 5xx/408/429). Retry a bounded number of times, with a fresh
  source URL if the provider can give one.
- ``StoredFileRejected``: final: the file is over the size cap, is not of the expected
  kind, or the source refused it (403 expired link, 404...). ``reason`` says which.

Retrying is safe. A write whose reply was lost may have happened; every write here is a
PUT (or a multipart upload completed once) of a whole object to a fixed key, so sending it
again to the same key only replaces the object with the same bytes. Choose the key once
per result (record it with the task before uploading) and reuse it on every retry: then a
lost reply never leaves an orphan. When ``put_from_url`` raises, it has also asked the
bucket to delete the key (best effort), so a failed attempt leaves nothing behind even
after an earlier attempt's lost reply; an object the bucket could not be asked to delete
is under a key nobody knows and is removed by the bucket's lifecycle rule.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import urllib.parse
import weakref
from contextlib import contextmanager
from typing import Iterator, NamedTuple

import boto3
import boto3.exceptions
import botocore.exceptions
import requests
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bff.file_kinds import HEAD_BYTES, TAIL_BYTES, FileKind, kind

# SigV4 presigned URLs live at most 7 days.
LINK_SECONDS_MAX = 7 * 24 * 3600

# Why the file was not stored (StorageError.reason).
STORAGE_UNAVAILABLE = "storage_unavailable"
SOURCE_FAILED = "source_failed"
SOURCE_TIMEOUT = "source_timeout"
SOURCE_REFUSED = "source_refused"
TOO_LARGE = "too_large"
WRONG_KIND = "wrong_kind"


class StorageError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StorageUnavailable(StorageError):
    """The bucket could not be used; the file is not at fault. Retry later."""


class SourceUnavailable(StorageError):
    """The source failed in a way that may pass. Retry a bounded number of times."""


class StoredFileRejected(StorageError):
    """A final failure: the file is too large, of the wrong kind, or refused by its source."""


# --- configuration -------------------------------------------------------------------

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One segment of a key: the prefix's parts, a task id, a file name.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_STORAGE_URL_FORM = "s3://BUCKET or s3://BUCKET/PREFIX"


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket`` or ``s3://bucket/some/prefix`` -> (bucket, prefix without slashes)."""
    # The value is never echoed: a mistaken setting could hold a secret.
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or parts.query or parts.fragment:
        raise ValueError(f"the storage URL must look like {_STORAGE_URL_FORM}")
    if not _BUCKET_NAME.fullmatch(parts.netloc):
        raise ValueError(f"the storage URL must look like {_STORAGE_URL_FORM}: the bucket name is 3-63 "
                         "lowercase letters, digits, dots and hyphens (no credentials or port)")
    prefix = parts.path.strip("/")
    if prefix and not all(_KEY_SEGMENT.fullmatch(segment) for segment in prefix.split("/")):
        raise ValueError(f"the storage URL must look like {_STORAGE_URL_FORM}: the prefix is made of "
                         "letters, digits, '.', '_' and '-' separated by '/'")
    return parts.netloc, prefix


def _check_segment(value: str, what: str) -> str:
    if not _KEY_SEGMENT.fullmatch(value):
        raise ValueError(f"{what} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'")
    return value


# Parts of a multipart upload. Memory per upload in flight is about two parts (the part and
# the chunks it is joined from: 17 MB measured by scripts/storage_memory.py), whatever the
# file's size. S3 and R2 need parts of at least 5 MiB.
_PART_BYTES = 8 * 1024 * 1024
# No upload threads: parts are read and sent one at a time (download and upload alternate),
# so memory stays bounded and no thread pool is started inside worker processes.
_TRANSFER = TransferConfig(multipart_threshold=_PART_BYTES, multipart_chunksize=_PART_BYTES, use_threads=False)
# Largest single read from the source: bounds how far a read can overrun the deadline.
_SOURCE_READ_BYTES = 1024 * 1024


class _Clients(NamedTuple):
    main: object  # botocore's S3 client; its class is generated at run time
    probe: object  # one attempt with short timeouts: readiness checks and cleanup


class ObjectStore:
    """One bucket (and key prefix) of an S3-compatible storage. Thread-safe."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 addressing_style: str | None = None, link_seconds: int = 900, connect_timeout: float = 3,
                 read_timeout: float = 30, max_attempts: int = 3) -> None:
        """``endpoint_url``: None for Amazon S3, else e.g. ``https://<account>.r2.cloudflarestorage.com``.
        ``region``: the bucket's region (``auto`` for R2 and Railway); None: boto3's default
        chain (``AWS_DEFAULT_REGION``). ``addressing_style``: None (automatic), ``path``
        (Supabase, older Railway buckets) or ``virtual``. ``link_seconds``: lifetime of
        signed links. ``max_attempts``: tries of each request in all (botocore retries)."""
        self.bucket, self.prefix = parse_storage_url(url)
        if not 1 <= link_seconds <= LINK_SECONDS_MAX:
            raise ValueError(f"link_seconds must be between 1 and {LINK_SECONDS_MAX}")
        if addressing_style not in (None, "path", "virtual"):
            raise ValueError("addressing_style must be None, 'path' or 'virtual'")
        if min(connect_timeout, read_timeout) <= 0 or max_attempts < 1:
            raise ValueError("timeouts must be positive and max_attempts at least 1")
        self.link_seconds = link_seconds
        self._endpoint_url = endpoint_url
        self._region = region
        self._addressing_style = addressing_style
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self._clients: _Clients | None = None
        _forget_clients_in_forked_children(self)

    # --- keys and links --------------------------------------------------------------

    def new_key(self, task_id: str, name: str) -> str:
        """A fresh key for the file ``name`` of a task: ``{prefix}/results/{task_id}/{random}/{name}``."""
        segments = (self.prefix, "results", _check_segment(task_id, "task_id"), secrets.token_urlsafe(24),
                    _check_segment(name, "name"))
        return "/".join(segment for segment in segments if segment)

    def signed_url(self, key: str, *, filename: str | None = None, content_type: str | None = None) -> str:
        """A link that downloads ``key`` for ``link_seconds``, as an attachment named ``filename``
        with ``content_type`` when given. Signed locally: no request is made."""
        params = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = _attachment(filename)
        if content_type:
            params["ResponseContentType"] = content_type
        with _classified():
            return self._client().generate_presigned_url("get_object", Params=params, ExpiresIn=self.link_seconds)

    # --- requests to the bucket ------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        with _classified():
            self._client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key succeeds."""
        with _classified():
            self._client().delete_object(Bucket=self.bucket, Key=key)

    def ping(self) -> None:
        """Raise StorageUnavailable unless the bucket answers (HeadBucket, one quick try)."""
        with _classified():
            self._clients_now().probe.head_bucket(Bucket=self.bucket)

    def put_from_url(self, key: str, source_url: str, *, expected: str | FileKind, max_bytes: int,
                     timeout_seconds: float, content_type: str | None = None) -> int:
        """Download ``source_url`` (a provider's signed link) into ``key`` and return its size.

        The file is streamed: at most about two upload parts are in memory, and nothing is
        written to disk. It is checked on the way: over ``max_bytes`` or not of the
        ``expected`` kind (a kind name of bff.file_kinds, or a FileKind) it is rejected
        before the upload completes, and ``timeout_seconds`` bounds the whole transfer.
        ``content_type`` defaults to the kind's. On any failure nothing is left at ``key``.
        """
        file_kind = kind(expected) if isinstance(expected, str) else expected
        deadline = time.monotonic() + timeout_seconds
        try:
            with _classified(), self._open_source(source_url, timeout_seconds) as response:
                stream = _CheckedStream(response, file_kind, max_bytes, deadline)
                stream.read_head()  # the kind is checked before the bucket is contacted
                self._client().upload_fileobj(stream, self.bucket, key, Config=_TRANSFER,
                                              ExtraArgs={"ContentType": content_type or file_kind.content_type})
                return stream.size
        except StorageError:
            self._forget(key)
            raise

    # --- internals -------------------------------------------------------------------

    def _open_source(self, source_url: str, timeout_seconds: float) -> requests.Response:
        if urllib.parse.urlsplit(source_url).scheme not in ("http", "https"):
            raise StoredFileRejected(SOURCE_REFUSED, "the source URL is not http(s)")
        response = requests.get(
            source_url, stream=True,  # no Authorization: a signed link carries its own
            timeout=(self._connect_timeout, min(self._read_timeout, timeout_seconds)),
            # The bytes as stored at the source: a compressed body would not pass the kind check.
            headers={"Accept-Encoding": "identity"},
        )
        refusal = _source_status_error(response.status_code)
        if refusal is not None:
            response.close()
            raise refusal
        return response

    def _forget(self, key: str) -> None:
        """Best-effort delete after a failed upload (see the module's note on retries)."""
        try:
            with _classified():
                self._clients_now().probe.delete_object(Bucket=self.bucket, Key=key)
        except StorageUnavailable:
            pass  # the key is unknown to anyone; the bucket's lifecycle rule removes it

    def _client(self):
        return self._clients_now().main

    def _clients_now(self) -> _Clients:
        # Built on first use, not in __init__: after gunicorn or dramatiq fork, and only in
        # processes that use storage.
        clients = self._clients
        if clients is None:
            with self._lock:
                if self._clients is None:
                    self._clients = self._build_clients()
                clients = self._clients
        return clients

    def _build_clients(self) -> _Clients:
        session = boto3.session.Session()  # its own: boto3's default session is not thread-safe
        return _Clients(
            main=session.client("s3", endpoint_url=self._endpoint_url, region_name=self._region,
                                config=self._config(self._read_timeout, self._max_attempts)),
            probe=session.client("s3", endpoint_url=self._endpoint_url, region_name=self._region,
                                 config=self._config(self._connect_timeout, 1)),
        )

    def _config(self, read_timeout: float, max_attempts: int) -> Config:
        options = {}
        if self._addressing_style:
            options["s3"] = {"addressing_style": self._addressing_style}
        if self._endpoint_url:
            # boto3's default CRC checksums (aws-chunked uploads with trailers) are refused by
            # some S3-compatible stores: send checksums only where the API requires them.
            options.update(request_checksum_calculation="when_required",
                           response_checksum_validation="when_required")
        return Config(
            signature_version="s3v4",  # R2 and the other S3-compatibles accept only SigV4
            connect_timeout=self._connect_timeout, read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},  # tries in all
            **options,
        )

    def _forget_clients(self) -> None:
        # In a forked child: the parent's connections and lock state must not be shared.
        self._lock = threading.Lock()
        self._clients = None


def _forget_clients_in_forked_children(store: ObjectStore) -> None:
    reference = weakref.ref(store)  # the hook must not keep the store alive

    def forget() -> None:
        alive = reference()
        if alive is not None:
            alive._forget_clients()

    os.register_at_fork(after_in_child=forget)


def _attachment(filename: str) -> str:
    """Content-Disposition for a download, with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"


# --- the source stream ------------------------------------------------------------------


class _CheckedStream:
    """A source's body as the file object ``upload_fileobj`` reads. Every read enforces the
    size cap and the deadline; the kind is checked on the first bytes (``read_head``, before
    the upload starts) and at the end of the body (before the last part is handed over,
    so the upload is never completed for a bad file: s3transfer aborts it)."""

    def __init__(self, response: requests.Response, file_kind: FileKind, max_bytes: int, deadline: float):
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise StoredFileRejected(TOO_LARGE, f"the source declares {declared} bytes, over {max_bytes}")
        self._raw = response.raw
        self._kind = file_kind
        self._max_bytes = max_bytes
        self._deadline = deadline
        self.size = 0
        self._head = b""
        self._tail = b""
        self._unread = b""  # read by read_head, not yet handed to the upload
        self._ended = False

    def read_head(self) -> None:
        chunks = []
        while self.size < HEAD_BYTES and (chunk := self._next_chunk(HEAD_BYTES - self.size)):
            chunks.append(chunk)
        self._unread = b"".join(chunks)
        if not self._kind.head(self._head):
            raise StoredFileRejected(WRONG_KIND, f"the file does not start like a {self._kind.name} file")

    def read(self, amount: int = -1) -> bytes:
        """Up to ``amount`` bytes (all when negative), fewer only at the end, like a file."""
        wanted = amount if amount >= 0 else self._max_bytes + 1
        chunks = [self._unread[:wanted]]
        self._unread = self._unread[wanted:]
        filled = len(chunks[0])
        while filled < wanted and (chunk := self._next_chunk(min(wanted - filled, _SOURCE_READ_BYTES))):
            chunks.append(chunk)
            filled += len(chunk)
        return b"".join(chunks)

    def _next_chunk(self, amount: int) -> bytes:
        if self._ended:
            return b""
        if time.monotonic() > self._deadline:
            raise SourceUnavailable(SOURCE_TIMEOUT, "the download took longer than its deadline")
        # read1 returns after one socket read: a slow trickle cannot hold a read past the
        # read timeout, and the deadline is checked between reads.
        chunk = self._raw.read1(amount, decode_content=False)
        if not chunk:
            self._ended = True
            if not self._kind.whole(self._head, self._tail, self.size):
                raise StoredFileRejected(WRONG_KIND, f"the file is not a complete {self._kind.name} file")
            return b""
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise StoredFileRejected(TOO_LARGE, f"the file is larger than {self._max_bytes} bytes")
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[:HEAD_BYTES - len(self._head)]
        self._tail = (self._tail + chunk[-TAIL_BYTES:])[-TAIL_BYTES:]
        return chunk


# --- error classification: the one place ---------------------------------------------------

# Source answers that may pass with time; any other non-200 answer is a refusal.
_SOURCE_TRANSIENT_STATUSES = (408, 425, 429)


def _source_status_error(status: int) -> StorageError | None:
    if status == 200:
        return None
    if status >= 500 or status in _SOURCE_TRANSIENT_STATUSES:
        return SourceUnavailable(SOURCE_FAILED, f"the source answered HTTP {status}")
    return StoredFileRejected(SOURCE_REFUSED, f"the source answered HTTP {status}")


def _classify(error: Exception) -> StorageError | None:
    """The StorageError an exception from boto3 or from the source download means, or None."""
    if isinstance(error, StorageError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        # Every error answer of the bucket, 4xx included: with our own keys and capped sizes a
        # 4xx means credentials, permissions, bucket or region, for an operator to fix.
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return StorageUnavailable(STORAGE_UNAVAILABLE,
                                  f"{error.operation_name}: {details.get('Code', 'error')} (HTTP {status})")
    # Checked before urllib3's: some botocore errors (read timeouts) subclass urllib3's too.
    if isinstance(error, (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error)):
        return StorageUnavailable(STORAGE_UNAVAILABLE, f"{type(error).__name__}: {str(error)[:300]}")
    if isinstance(error, (requests.RequestException, urllib3.exceptions.HTTPError)):
        # Only the type: the message would name the source's signed URL.
        return SourceUnavailable(SOURCE_FAILED, f"the download failed: {type(error).__name__}")
    return None


@contextmanager
def _classified() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        classified = _classify(error)
        if classified is None or classified is error:
            raise
        if isinstance(classified, SourceUnavailable):
            raise classified from None  # the original's message names the signed source URL
        raise classified from error
