"""Results in object storage: any S3-compatible bucket (Amazon S3, Cloudflare R2, Railway
and Supabase buckets), reached with boto3.

Workers keep every result here before a task becomes completed (``put_from_url`` streams a
provider's file into the bucket, ``put_bytes`` stores one held in memory); the web role
answers a download with a 302 to ``signed_url``, which is signed locally (no request).

Credentials are passed in (the settings read ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``); without them boto3's default chain applies (e.g. a role).

Keys (``new_key``) follow ``bff.results.locations``: impossible to guess from a task id.

Failures are classified in one place (``_classify``) into three exceptions:

- ``StorageUnavailable``: the bucket could not be used (network, timeout, 5xx, missing or
  refused credentials, missing bucket). Nothing is wrong with the file: retry later.
- ``SourceUnavailable``: the source failed in a way that may pass (network, timeout, its
  overall deadline, HTTP 5xx/408/425/429). Retry a bounded number of times, with a fresh
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
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import boto3
import boto3.exceptions
import botocore.exceptions
import requests
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bff.results.file_kinds import HEAD_BYTES, TAIL_BYTES, FileKind, kind
from bff.results.locations import LINK_SECONDS_MAX, RESULTS, object_key, parse_storage_url

# Why the file was not stored (StorageError.reason).
STORAGE_UNAVAILABLE = "storage_unavailable"
SOURCE_FAILED = "source_failed"
SOURCE_TIMEOUT = "source_timeout"
SOURCE_REFUSED = "source_refused"
TOO_LARGE = "too_large"
WRONG_KIND = "wrong_kind"


class StorageError(Exception):
    def __init__(self, reason: str, detail: str, http_status: int | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.http_status = http_status  # of the bucket's error answer, when it gave one


class StorageUnavailable(StorageError):
    """The bucket could not be used; the file is not at fault. Retry later."""


class SourceUnavailable(StorageError):
    """The source failed in a way that may pass. Retry a bounded number of times."""


class StoredFileRejected(StorageError):
    """A final failure: the file is too large, of the wrong kind, or refused by its source."""


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
    main: Any  # botocore's S3 client; its class is generated at run time
    probe: Any  # one attempt with short timeouts: readiness checks, cleanup, quick puts


class Stored(NamedTuple):
    """What ``put_from_url`` kept: its size in bytes and its kind (a name of bff.results.file_kinds)."""

    size: int
    kind: str


class ObjectStore:
    """One bucket (and key prefix) of an S3-compatible storage. Thread-safe."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 addressing_style: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, link_seconds: int = 900, connect_timeout: float = 3,
                 read_timeout: float = 30, max_attempts: int = 3) -> None:
        """``endpoint_url``: None for Amazon S3, else e.g. ``https://<account>.r2.cloudflarestorage.com``.
        ``region``: the bucket's region (``auto`` for R2 and Railway); None: boto3's default
        chain (``AWS_DEFAULT_REGION``). ``addressing_style``: None (automatic), ``path``
        (Supabase, older Railway buckets) or ``virtual``. ``access_key_id`` and
        ``secret_access_key``: None for boto3's default chain. ``link_seconds``: lifetime of
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
        self._credentials = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self._clients: _Clients | None = None
        _forget_clients_in_forked_children(self)

    # --- keys and links --------------------------------------------------------------

    def new_key(self, task_id: str, name: str, folder: str = RESULTS) -> str:
        """A fresh key for the file ``name`` of a task: ``{prefix}/{folder}/{task_id}/{random}/{name}``."""
        return object_key(self.prefix, folder, task_id, name)

    def signed_url(self, key: str) -> str:
        """A link that downloads ``key`` for ``link_seconds``. Signed locally: no request is made."""
        with _classified():
            return self._client().generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                         ExpiresIn=self.link_seconds)

    # --- requests to the bucket ------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str, *, quick: bool = False) -> None:
        """Store ``data`` at ``key``. ``quick``: one try with short timeouts, for a caller that
        has somewhere else to keep the bytes meanwhile."""
        clients = self._clients_now()
        with _classified():
            (clients.probe if quick else clients.main).put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes | None:
        """The object at ``key``, or None when there is none."""
        try:
            with _classified():
                return self._client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except StorageUnavailable as error:
            if error.http_status == 404:
                return None
            raise

    def discard(self, key: str) -> None:
        """Delete ``key`` if the bucket answers at once (one quick try, no error): for cleanup
        that must not hold its caller up. A key left behind is removed by the bucket's
        lifecycle rule."""
        try:
            with _classified():
                self._clients_now().probe.delete_object(Bucket=self.bucket, Key=key)
        except StorageUnavailable:
            pass

    def ping(self) -> None:
        """Raise StorageUnavailable unless the bucket answers (HeadBucket, one quick try)."""
        with _classified():
            self._clients_now().probe.head_bucket(Bucket=self.bucket)

    def put_from_url(self, key: str, source_url: str, *, expected: str | tuple[str, ...], max_bytes: int,
                     timeout_seconds: float) -> Stored:
        """Download ``source_url`` (a provider's signed link) into ``key``.

        The file is streamed: at most about two upload parts are in memory, and nothing is
        written to disk. It is checked on the way: over ``max_bytes`` or not of an
        ``expected`` kind (names of bff.results.file_kinds; the first whose start matches is
        the file's kind, and gives the object's content type) it is rejected before the
        upload completes, and ``timeout_seconds`` bounds the whole transfer. On any failure
        nothing is left at ``key``.
        """
        kinds = tuple(kind(name) for name in ((expected,) if isinstance(expected, str) else expected))
        deadline = time.monotonic() + timeout_seconds
        try:
            with _classified(), self._open_source(source_url, timeout_seconds) as response:
                stream = _CheckedStream(response, kinds, max_bytes, deadline)
                file_kind = stream.read_head()  # the kind is checked before the bucket is contacted
                self._client().upload_fileobj(stream, self.bucket, key, Config=_TRANSFER,
                                              ExtraArgs={"ContentType": file_kind.content_type})
                return Stored(stream.size, file_kind.name)
        except StorageError:
            self.discard(key)  # see the module's note on retries
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
        # Its own session: boto3's default one is not thread-safe.
        session = boto3.session.Session(**self._credentials)
        return _Clients(
            main=session.client("s3", endpoint_url=self._endpoint_url, region_name=self._region,
                                config=self._config(self._read_timeout, self._max_attempts)),
            probe=session.client("s3", endpoint_url=self._endpoint_url, region_name=self._region,
                                 config=self._config(self._connect_timeout, 1)),
        )

    def _config(self, read_timeout: float, max_attempts: int) -> Config:
        options: dict[str, Any] = {}
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


# --- the source stream ------------------------------------------------------------------


class _CheckedStream:
    """A source's body as the file object ``upload_fileobj`` reads. Every read enforces the
    size cap and the deadline; the kind is checked on the first bytes (``read_head``, before
    the upload starts) and at the end of the body (before the last part is handed over,
    so the upload is never completed for a bad file: s3transfer aborts it)."""

    def __init__(self, response: requests.Response, kinds: tuple[FileKind, ...], max_bytes: int, deadline: float):
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise StoredFileRejected(TOO_LARGE, f"the source declares {declared} bytes, over {max_bytes}")
        self._raw = response.raw
        self._kinds = kinds
        self._kind = kinds[0]
        self._max_bytes = max_bytes
        self._deadline = deadline
        self.size = 0
        self._head = b""
        self._tail = b""
        self._unread = b""  # read by read_head, not yet handed to the upload
        self._ended = False

    def read_head(self) -> FileKind:
        """Read the first bytes and return the expected kind they start like."""
        chunks = []
        while self.size < HEAD_BYTES and (chunk := self._raw_chunk(HEAD_BYTES - self.size)):
            chunks.append(chunk)
        self._unread = b"".join(chunks)
        matching = next((candidate for candidate in self._kinds if candidate.head(self._head)), None)
        if matching is None:
            names = " or ".join(candidate.name for candidate in self._kinds)
            raise StoredFileRejected(WRONG_KIND, f"the file does not start like a {names} file")
        self._kind = matching
        if self._ended:
            self._check_whole()
        return matching

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
        chunk = self._raw_chunk(amount)
        if not chunk:
            self._check_whole()
        return chunk

    def _check_whole(self) -> None:
        if not self._kind.whole(self._head, self._tail, self.size):
            raise StoredFileRejected(WRONG_KIND, f"the file is not a complete {self._kind.name} file")

    def _raw_chunk(self, amount: int) -> bytes:
        """The next bytes of the body (b"" at its end, then ``_ended``), counted and capped."""
        if self._ended:
            return b""
        if time.monotonic() > self._deadline:
            raise SourceUnavailable(SOURCE_TIMEOUT, "the download took longer than its deadline")
        # read1 returns after one socket read: a slow trickle cannot hold a read past the
        # read timeout, and the deadline is checked between reads.
        chunk = self._raw.read1(amount, decode_content=False)
        if not chunk:
            self._ended = True
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
                                  f"{error.operation_name}: {details.get('Code', 'error')} (HTTP {status})", status)
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
