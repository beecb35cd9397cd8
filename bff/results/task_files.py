"""Where each file of a task is, for both roles: in the bucket when object storage is
configured (``objects`` is not None), else in Redis (images, uploads) or at the provider
(models). The names of the objects, the kinds a file may be, and how a stored file is
reached are decided here.
"""

from __future__ import annotations

from dataclasses import replace

from bff.tasks.image_formats import CONTENT_TYPES, EXTENSIONS, sniff_format
from bff.tasks.record import IMAGE_FORMAT, IMAGES, MODEL, PREVIEW, UPLOAD, Task, Upload
from bff.tasks.store import TaskStore

from .locations import UPLOADS
from .object_store import ObjectStore

# Tripo's preview render is an image whose format it does not promise.
PREVIEW_KINDS = ("png", "jpeg", "webp")


def model_keys(objects: ObjectStore, task_id: str, outputs: dict) -> dict:
    """Keys for a model task's files: its model (named after its format) and preview."""
    keys = {MODEL: objects.new_key(task_id, f"model.{outputs[MODEL]}")}
    if PREVIEW in outputs:
        keys[PREVIEW] = objects.new_key(task_id, "preview")  # its kind is known once read
    return keys


def image_keys(objects: ObjectStore, task_id: str, outputs: dict) -> dict:
    """Keys for an image task's images, in order."""
    extension = EXTENSIONS[outputs[IMAGE_FORMAT]]
    return {IMAGES: [objects.new_key(task_id, f"image-{index}.{extension}") for index in range(outputs[IMAGES])]}


def image_content_type(task_outputs: dict) -> str:
    return CONTENT_TYPES[task_outputs[IMAGE_FORMAT]]


def keep_upload(objects: ObjectStore | None, task: Task, upload: Upload | None) -> tuple[Task, Upload | None]:
    """Where a new task's uploaded input goes: into the bucket when storage is configured
    (the task records its key and Redis gets no bytes), else into Redis with the task.
    Returns the task to record and the upload Redis should keep."""
    if objects is None or upload is None:
        return task, upload
    key = objects.new_key(task.id, upload.filename, folder=UPLOADS)
    objects.put_bytes(key, upload.data, upload.content_type)
    return replace(task, object_keys={**task.object_keys, UPLOAD: key}), None


def discard_kept_upload(objects: ObjectStore | None, task: Task) -> None:
    """Remove what ``keep_upload`` put in the bucket for a task that was not recorded."""
    key = task.object_keys.get(UPLOAD)
    if objects is not None and key is not None:
        objects.discard(key)


def load_upload(objects: ObjectStore | None, store: TaskStore, task: Task) -> Upload | None:
    """The task's uploaded input, wherever it was kept; None when it is gone."""
    key = task.object_keys.get(UPLOAD)
    if objects is None or key is None:
        return store.upload(task.id)
    data = objects.get_bytes(key)
    image_format = sniff_format(data) if data else None
    if data is None or image_format is None:
        return None
    return Upload(data=data, content_type=CONTENT_TYPES[image_format], filename=key.rsplit("/", 1)[-1])


def load_images(objects: ObjectStore | None, store: TaskStore, task: Task) -> list[bytes]:
    """A completed image task's images, in order, wherever they are kept."""
    keys = task.object_keys.get(IMAGES)
    if objects is None or keys is None:
        return store.images(task.id)
    return [objects.get_bytes(key) or b"" for key in keys]


def signed_link(objects: ObjectStore | None, task: Task, which: str, index: int = 0) -> str | None:
    """A freshly signed link to a stored file of the task (``index`` picks an image), or
    None when that file is not in the bucket."""
    keys = task.object_keys.get(which)
    if objects is None or keys is None:
        return None
    return objects.signed_url(keys[index] if isinstance(keys, list) else keys)
