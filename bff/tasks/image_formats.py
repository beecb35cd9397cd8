"""The image formats tasks take in and give out, told by decoding, never by a name."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def sniff_format(data: bytes) -> str | None:
    """PNG, JPEG or WEBP from the file's header, or None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format if image.format in CONTENT_TYPES else None
    except (UnidentifiedImageError, OSError):
        return None
