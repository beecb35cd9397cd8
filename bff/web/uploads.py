"""Checking an uploaded image by decoding it, never by its name or declared type.

Only a complete PNG, JPEG or WebP image within the size limits is accepted; everything
else is refused with a message a person can act on, before anything is stored or sent.

Decoding takes up to seconds of CPU (1.7 s for an 8192 x 8192 WebP on a 2-core machine).
Under gevent (the web role) that would hold every request of the process, so the check
runs in a thread beside the event loop; Pillow releases the GIL while it decodes.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from gevent import monkey
from gevent.threadpool import ThreadPool
from PIL import Image, UnidentifiedImageError

from bff.tasks.image_formats import CONTENT_TYPES, EXTENSIONS

MAX_SIDE_PIXELS = 8192
# One check at a time per process, as when checks ran on the event loop: a decoded image
# of the largest size takes up to 268 MB, which a small container cannot hold many times.
CHECKING_THREADS = 1


class UploadTooLarge(Exception):
    """The file is over the byte limit (answered 413)."""


class UploadRejected(Exception):
    """The file is not an acceptable image (answered 422); the message says why."""


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str  # PNG, JPEG or WEBP
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def filename(self) -> str:
        # OpenAI reads the type from the part; a neutral name avoids echoing the client's.
        return f"image.{EXTENSIONS[self.format]}"


def check_image_off_loop(data: bytes, *, max_bytes: int) -> CheckedImage:
    """``check_image`` in a thread of its own when gevent has patched this process, so the
    event loop serves other requests meanwhile; directly otherwise (tests, the embedded
    sandbox, where requests already have threads of their own)."""
    if not monkey.is_module_patched("threading"):
        return check_image(data, max_bytes=max_bytes)
    return _checking_pool().apply(check_image, (data,), {"max_bytes": max_bytes})


@functools.cache
def _checking_pool() -> ThreadPool:
    # Made on first use, so in the process that serves requests (not before a fork).
    return ThreadPool(CHECKING_THREADS)


def check_image(data: bytes, *, max_bytes: int) -> CheckedImage:
    if not data:
        raise UploadRejected("The image file is empty.")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    return _decode(data)


def _decode(data: bytes) -> CheckedImage:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            width, height = image.size
            if image_format not in CONTENT_TYPES:
                raise UploadRejected(f"The image must be PNG, JPEG or WebP, not {image_format}.")
            if max(width, height) > MAX_SIDE_PIXELS:
                raise UploadRejected(f"The image is {width}x{height} px; at most {MAX_SIDE_PIXELS} px a side.")
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
    except UnidentifiedImageError:
        raise UploadRejected("The file is not a PNG, JPEG or WebP image.") from None
    except Image.DecompressionBombError:
        # Pillow's milder warning (over 89 Mpx) needs no filter here: so many pixels always
        # break the side limit too. (A warnings filter is process-wide: from a thread it
        # would race with the rest of the process.)
        raise UploadRejected("The image has too many pixels to be processed safely.") from None
    except (OSError, SyntaxError, ValueError):
        raise UploadRejected("The image is truncated or corrupt.") from None
    return CheckedImage(data=data, format=image_format, width=width, height=height)
