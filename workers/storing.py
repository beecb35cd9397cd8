"""Keeping a finished task's files in object storage before it completes (``BFF_STORAGE_URL``).

A task is never completed without its files. When its provider is done, the task moves to
``storing`` (bff.tasks.lifecycle) with the keys its files will have: chosen once and
recorded first, so every attempt writes the same keys and a lost reply leaves no orphan.

- A Tripo task: the poller only records that; the ``store_results`` actor reads the task
  at Tripo again (its signed links live about five minutes, and a retry may come much
  later), streams the model and the preview into the bucket (size cap, timeout, kind
  check) and completes the task.
- An OpenAI task: its images came in the edit's answer and are paid for. The sending
  worker stores them at once (``put_paid_images``); if the storage cannot take them, they
  wait in Redis under the task, the only file bytes Redis holds with storage configured,
  until the actor stores them.

Failures that may pass (the storage or the provider's file server down) are retried with
backoff until the storing deadline, then the task fails with a storage code; a file that
can never be kept fails the task at once with its own code (``_REJECTION_CODES``, the one
mapping). One worker at a time stores a task (a lease), so a failing attempt, which
removes its partial file, can never remove what another attempt stored. A lease names its
worker: one left by a worker whose heartbeat is gone (``workers.heartbeat``) is taken over
at once rather than after its full length, since an attempt can always start again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from bff.providers import tripo
from bff.providers.errors import FINAL, ProviderError
from bff.providers.tripo_status import TripoSnapshot, snapshot_from_tripo
from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.results import object_store, task_files
from bff.results.object_store import (
    ObjectStore,
    SourceUnavailable,
    StorageError,
    StorageUnavailable,
    Stored,
    StoredFileRejected,
)
from bff.tasks import lifecycle
from bff.tasks.error_codes import task_error
from bff.tasks.lifecycle import TaskChange
from bff.tasks.record import COMPLETED, IMAGES, MODEL, PREVIEW, STORING, UPLOAD, Task
from bff.tasks.store import task_key

from .backoff import backoff_seconds
from .heartbeat import heartbeat_key
from .runtime import WorkerRuntime

log = logging.getLogger(__name__)

# How long each download from the provider may take in all (its size is capped too):
# BFF_MAX_MODEL_MB (200) in 180 s needs about 1.1 MB/s.
TRANSFER_SECONDS = {MODEL: 180.0, PREVIEW: 30.0}
# A store attempt's longest run: each file read from Tripo and downloaded at most twice,
# plus margin. The lease lasts that long, so a worker that dies mid-attempt holds the task
# up no longer.
STORE_ATTEMPT_SECONDS = 2 * sum(tripo.CONNECT_TIMEOUT_SECONDS + tripo.READ_TIMEOUT_SECONDS + seconds
                                for seconds in TRANSFER_SECONDS.values()) + 60
# The sending worker's tries to store paid images stop after this long (the rest wait in
# Redis): reconciliation allows for it in the claim of an OpenAI call.
PAID_IMAGES_SECONDS = 20.0

# A file that can never be kept -> the task's error code.
_REJECTION_CODES = {
    object_store.TOO_LARGE: "result_too_large",
    object_store.WRONG_KIND: "result_invalid",
    object_store.SOURCE_REFUSED: "result_unavailable",
}


class _ImagesLost(Exception):
    """The paid images waiting for storage are gone from Redis (evicted, or the worker died
    before it could keep them there)."""


def keys_for_read(runtime: WorkerRuntime, task_id: str, snapshot: TripoSnapshot) -> dict | None:
    """The keys a completed read's files will have, when storage is configured; else None
    (the read completes the task as it is)."""
    if runtime.objects is None or snapshot.status != COMPLETED:
        return None
    return task_files.model_keys(runtime.objects, task_id, snapshot.outputs)


def put_paid_images(objects: ObjectStore, task_id: str, images: list[bytes], outputs: dict) -> tuple[dict, bool]:
    """Put an edit's images into the bucket with one quick try each, within
    ``PAID_IMAGES_SECONDS``: their keys, and whether the storage took them all."""
    keys = task_files.image_keys(objects, task_id, outputs)
    try:
        _put_images(objects, keys[IMAGES], images, outputs, quick_within=PAID_IMAGES_SECONDS)
    except StorageError as error:
        log.warning("storage cannot take the paid images now; keeping them in redis until it can",
                    extra={"reason": error.reason, "error": error.detail})
        return keys, False
    return keys, True


def store_results(runtime: WorkerRuntime, task_id: str) -> None:
    """One attempt to store the files of a task in ``storing`` and complete it; on a
    failure that may pass, the next attempt is scheduled."""
    task = runtime.store.get(task_id)
    if task is None or task.submission != STORING:
        return
    if (task.next_attempt_at or 0) > time.time() + 1:
        return  # an earlier message whose attempt another has since replaced: one chain of retries per task
    if runtime.objects is None:
        log.error("a task waits to store its files but BFF_STORAGE_URL is not set; it fails at its deadline")
        return
    lease = _take_lease(runtime, task_id)
    if lease is None:
        log.info("another worker is storing this task's files")
        return
    try:
        _attempt(runtime, runtime.objects, task)
    finally:
        _release_lease(runtime, task_id, lease)


# Takes lease KEYS[1] for token ARGV[1] (ARGV[2] seconds) unless another live worker holds
# it: 1 taken (or already ours: a call re-sent after its reply was lost), 2 taken over from
# a worker whose heartbeat (ARGV[3] .. its id) is gone, 0 held. A holder with no worker id
# (a process not beating, or a lease of the version before) only expires.
_TAKE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return 1 end
local taken = 1
if holder then
  local worker = string.match(holder, '^([^/]+)/')
  if not worker or redis.call('EXISTS', ARGV[3] .. worker) == 1 then return 0 end
  taken = 2
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return taken
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


def _take_lease(runtime: WorkerRuntime, task_id: str) -> str | None:
    """This attempt's lease token (``worker id/random``), or None while another live
    worker stores the task."""
    token = f"{runtime.heartbeat.worker_id or ''}/{uuid.uuid4().hex}"
    taken = runtime.services.redis.eval(_TAKE_LEASE, 1, task_key(task_id, "storing"), token,
                                        int(STORE_ATTEMPT_SECONDS), heartbeat_key(""))
    if taken == 2:
        log.warning("took over the storing lease of a worker that stopped mid-attempt")
    return token if taken else None


def _release_lease(runtime: WorkerRuntime, task_id: str, token: str) -> None:
    try:
        runtime.services.redis.eval(_RELEASE_LEASE, 1, task_key(task_id, "storing"), token)
    except REDIS_UNAVAILABLE_ERRORS:
        pass  # unreachable: it expires by itself


def discard_upload(runtime: WorkerRuntime, task: Task | None) -> None:
    """Delete the input image kept in the bucket once its task has ended."""
    key = task.object_keys.get(UPLOAD) if task is not None and task.is_terminal else None
    if key is not None and runtime.objects is not None:
        runtime.objects.discard(key)


def _attempt(runtime: WorkerRuntime, objects: ObjectStore, task: Task) -> None:
    keep: Callable[[WorkerRuntime, ObjectStore, Task], dict] = (
        _keep_images if IMAGES in task.object_keys else _keep_model)
    try:
        outputs = keep(runtime, objects, task)
    except StoredFileRejected as error:
        failure = task_error(_REJECTION_CODES[error.reason])
        _end(runtime, task, lambda current: lifecycle.storing_failed(current, failure), reason=error.detail)
    except _ImagesLost:
        _end(runtime, task, lambda current: lifecycle.storing_failed(current, lifecycle.deadline_error(current)),
             reason="the images waiting for storage are gone")
    except ProviderError as error:
        if error.outcome != FINAL:
            _again_later(runtime, task, f"tripo read: {error.error_code}", error.retry_after)
            return
        lost = task_error(error.error_code)
        _end(runtime, task, lambda current: lifecycle.storing_failed(current, lost), reason=error.detail)
    except StorageError as error:  # the storage, or the provider's file server, is down: retry
        _again_later(runtime, task, error.detail)
    else:
        _end(runtime, task, lambda current: lifecycle.files_stored(current, outputs), reason="stored")


def _keep_model(runtime: WorkerRuntime, objects: ObjectStore, task: Task) -> dict:
    """Stream a Tripo task's files into the bucket; returns the task's outputs as stored."""
    _keep_file(runtime, objects, task, MODEL, task.outputs[MODEL])
    outputs = dict(task.outputs)
    if PREVIEW in task.object_keys:
        try:
            outputs[PREVIEW] = _keep_file(runtime, objects, task, PREVIEW, task_files.PREVIEW_KINDS).kind
        except StoredFileRejected as error:
            # A preview is a convenience: a paid model is not failed for it.
            log.warning("the preview cannot be kept; the model completes without it", extra={"error": error.detail})
            del outputs[PREVIEW]
    return outputs


def _keep_file(runtime: WorkerRuntime, objects: ObjectStore, task: Task, which: str,
               expected: str | tuple[str, ...]) -> Stored:
    try:
        return _copy_from_tripo(runtime, objects, task, which, expected)
    except StoredFileRejected as error:
        if error.reason != object_store.SOURCE_REFUSED:
            raise
        # Its link may have expired while an earlier file was copied: once more, freshly read.
        return _copy_from_tripo(runtime, objects, task, which, expected)


def _copy_from_tripo(runtime: WorkerRuntime, objects: ObjectStore, task: Task, which: str,
                     expected: str | tuple[str, ...]) -> Stored:
    """Read the task at Tripo for a fresh signed link (they live minutes; a retry may come
    much later) and stream that file into its key."""
    url = snapshot_from_tripo(runtime.tripo.get_task(task.provider_task_id or "")).urls.get(which)
    if url is None:
        raise SourceUnavailable(object_store.SOURCE_FAILED, f"the provider's read has no link for the {which}")
    return objects.put_from_url(task.object_keys[which], url, expected=expected,
                                max_bytes=runtime.settings.max_model_bytes, timeout_seconds=TRANSFER_SECONDS[which])


def _keep_images(runtime: WorkerRuntime, objects: ObjectStore, task: Task) -> dict:
    """Store the paid images that waited in Redis; returns the task's outputs."""
    keys, images = task.object_keys[IMAGES], runtime.store.images(task.id)
    if len(images) != len(keys):
        raise _ImagesLost(task.id)
    _put_images(objects, keys, images, task.outputs)
    return task.outputs


def _put_images(objects: ObjectStore, keys: list[str], images: list[bytes], outputs: dict, *,
                quick_within: float | None = None) -> None:
    """Store each image at its key; with ``quick_within``, one quick try each, and none
    begun after that many seconds."""
    started = time.monotonic()
    for key, image in zip(keys, images, strict=True):
        if quick_within is not None and time.monotonic() - started > quick_within:
            raise StorageUnavailable(object_store.STORAGE_UNAVAILABLE, "the storage is too slow right now")
        objects.put_bytes(key, image, task_files.image_content_type(outputs), quick=quick_within is not None)


def _again_later(runtime: WorkerRuntime, task: Task, why: str, retry_after: float | None = None) -> None:
    delay = backoff_seconds(task.store_tries + 1, retry_after)
    if runtime.store.update(task.id, lambda current: lifecycle.store_again_at(current, time.time() + delay)):
        runtime.queue.store_results(task.id, task.request_id, delay_seconds=delay)
        log.warning("could not store the results yet; trying again",
                    extra={"error": why, "delay_seconds": round(delay, 1), "store_tries": task.store_tries + 1})


def _end(runtime: WorkerRuntime, task: Task, change: TaskChange, *, reason: str) -> None:
    ended = runtime.store.update(task.id, change)
    if ended is None:
        return
    discard_upload(runtime, ended)
    log.info("task ended", extra={"status": ended.status, "error_code": ended.error.code if ended.error else None,
                                  "detail": reason})
