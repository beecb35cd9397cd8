"""Checking an uploaded image by decoding it, never by its name or declared type.

Only a complete PNG, JPEG or WebP image within the size limits is accepted; everything
else is refused with a message a person can act on, before anything is stored or sent.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from bff.tasks.image_formats import CONTENT_TYPES, EXTENSIONS

MAX_SIDE_PIXELS = 8192


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


def check_image(data: bytes, *, max_bytes: int) -> CheckedImage:
    if not data:
        raise UploadRejected("The image file is empty.")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    with warnings.catch_warnings():
        # Pillow warns, then raises, on decompression bombs: make both an error here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRejected("The image has too many pixels to be processed safely.") from None
    except (OSError, SyntaxError, ValueError):
        raise UploadRejected("The image is truncated or corrupt.") from None
    return CheckedImage(data=data, format=image_format, width=width, height=height)
