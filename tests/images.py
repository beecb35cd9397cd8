"""Image files for upload tests, made with Pillow."""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image


def encoded(format_name: str = "PNG", size: tuple[int, int] = (64, 48), colour=(200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=format_name)
    return buffer.getvalue()


def noise_png(size: tuple[int, int]) -> bytes:
    """A PNG of random pixels: it does not compress, so it is about 3 bytes a pixel."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions: a decompression bomb's shape."""
    data = bytearray(encoded("PNG", (1, 1)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)
