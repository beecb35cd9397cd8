"""File kinds recognised by their bytes (magic numbers), and the content type of each.

Results are checked before they are kept, so that a provider's error page, a truncated
download or a file of another format is never stored and served as a model. Files are
streamed, so every kind has two checks:

- ``head(head)`` sees the first ``HEAD_BYTES`` of the file (all of it when shorter). It
  runs before any byte is stored, and is enough on its own for glb, gltf, png, jpeg, webp,
  fbx, usdz and zip: their signature is at the start.
- ``whole(head, tail, size)`` also sees the last ``TAIL_BYTES`` and the total size. It runs
  at the end of the stream, before the upload is completed. It is what really decides for
  kinds whose proof is not at the start, and catches truncated files of the others:
    - stl: a binary STL has no signature, only its size (84 + 50 x triangle count);
    - 3mf: the ``3D/3dmodel.model`` part is listed in the zip's central directory (tail);
    - obj: faces (``f`` lines) come after the vertices, usually far from the start;
    - glb and webp: their header states the total size; png ends with its IEND chunk;
      zip, usdz and 3mf end with the end-of-central-directory record; gltf ends with ``}``.
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bff.tasks.image_formats import CONTENT_TYPES as IMAGE_TYPES
from bff.tasks.model_formats import CONTENT_TYPES as MODEL_TYPES

HEAD_BYTES = 64 * 1024
# Large enough for the central directory of a 3MF with a few hundred parts.
TAIL_BYTES = 64 * 1024


def _always(head: bytes, tail: bytes, size: int) -> bool:
    return True


@dataclass(frozen=True)
class FileKind:
    name: str
    content_type: str
    head: Callable[[bytes], bool]
    whole: Callable[[bytes, bytes, int], bool] = _always

    def matches(self, data: bytes) -> bool:
        """Both checks on a file held in memory."""
        head = data[:HEAD_BYTES]
        return self.head(head) and self.whole(head, data[-TAIL_BYTES:], len(data))


# --- helpers ---------------------------------------------------------------------

_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_CENTRAL_HEADER = b"PK\x01\x02"
_ZIP_END_OF_DIRECTORY = b"PK\x05\x06"
_UTF8_BOM = b"\xef\xbb\xbf"


def _is_text(data: bytes) -> bool:
    """UTF-8 with no NUL byte; a character cut by the end of a prefix is allowed."""
    if b"\x00" in data:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _first_zip_entry_name(head: bytes) -> str | None:
    """The name in the local file header at offset 0, or None if it is not a zip."""
    if not head.startswith(_ZIP_LOCAL_HEADER) or len(head) < 30:
        return None
    name_length = struct.unpack_from("<H", head, 26)[0]
    name = head[30:30 + name_length]
    return name.decode("utf-8", "replace") if len(name) == name_length else None


def _zip_central_names(tail: bytes) -> set[str]:
    """Entry names listed in the central directory entries found in ``tail``."""
    names = set()
    for match in re.finditer(re.escape(_ZIP_CENTRAL_HEADER), tail):
        start = match.start()
        if start + 46 > len(tail):
            continue
        name_length = struct.unpack_from("<H", tail, start + 28)[0]
        names.add(tail[start + 46:start + 46 + name_length].decode("utf-8", "replace").lower())
    return names


def _zip_ends(head: bytes, tail: bytes, size: int) -> bool:
    """The file ends with the end-of-central-directory record (22 bytes, then its comment)."""
    start = tail.rfind(_ZIP_END_OF_DIRECTORY)
    if start < 0 or start + 22 > len(tail):
        return False
    comment_length = struct.unpack_from("<H", tail, start + 20)[0]
    return start + 22 + comment_length == len(tail)


def _u32_at(data: bytes, offset: int) -> int | None:
    return struct.unpack_from("<I", data, offset)[0] if len(data) >= offset + 4 else None


# --- the kinds ---------------------------------------------------------------------


def _glb_head(head: bytes) -> bool:
    return head[:4] == b"glTF" and _u32_at(head, 4) == 2


def _glb_whole(head: bytes, tail: bytes, size: int) -> bool:
    return _u32_at(head, 8) == size


def _gltf_head(head: bytes) -> bool:
    return _is_text(head) and head.removeprefix(_UTF8_BOM).lstrip().startswith(b"{")


def _gltf_whole(head: bytes, tail: bytes, size: int) -> bool:
    return tail.rstrip().endswith(b"}")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its fixed CRC


def _png_whole(head: bytes, tail: bytes, size: int) -> bool:
    return tail.endswith(_PNG_END)


def _webp_head(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _webp_whole(head: bytes, tail: bytes, size: int) -> bool:
    return _u32_at(head, 4) == size - 8


_FBX_SIGNATURE = b"Kaydara FBX Binary  \x00"
_USD_SUFFIXES = (".usda", ".usdc", ".usd")
_3MF_MODEL_PART = "3d/3dmodel.model"


def _usdz_head(head: bytes) -> bool:
    name = _first_zip_entry_name(head)
    return name is not None and name.lower().endswith(_USD_SUFFIXES)


def _3mf_whole(head: bytes, tail: bytes, size: int) -> bool:
    return _zip_ends(head, tail, size) and _3MF_MODEL_PART in _zip_central_names(tail)


_STL_HEADER = 84
_STL_TRIANGLE = 50


def _stl_head(head: bytes) -> bool:
    # A binary STL has no signature: anything long enough may be one until its size is known.
    return len(head) >= _STL_HEADER + _STL_TRIANGLE or _ascii_stl_start(head)


def _ascii_stl_start(head: bytes) -> bool:
    return head.lstrip().startswith(b"solid") and _is_text(head)


def _stl_whole(head: bytes, tail: bytes, size: int) -> bool:
    triangles = _u32_at(head, 80)
    if triangles and size == _STL_HEADER + _STL_TRIANGLE * triangles:
        return True
    # Binary files may also start with "solid": only a text file ending its solid is ASCII.
    return _ascii_stl_start(head) and b"endsolid" in tail


_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]", re.MULTILINE)
_OBJ_FACE = re.compile(rb"^[ \t]*f[ \t]", re.MULTILINE)


def _obj_head(head: bytes) -> bool:
    return _is_text(head) and _OBJ_VERTEX.search(head) is not None


def _obj_whole(head: bytes, tail: bytes, size: int) -> bool:
    return _OBJ_FACE.search(tail) is not None or _OBJ_FACE.search(head) is not None


def _zip_head(head: bytes) -> bool:
    return head.startswith((_ZIP_LOCAL_HEADER, _ZIP_END_OF_DIRECTORY))


# In detection order: specific kinds before the generic ones they look like (usdz and 3mf
# are zips; anything of the right size can pass for a binary STL).
_ALL = (
    FileKind("glb", MODEL_TYPES["glb"], _glb_head, _glb_whole),
    FileKind("png", IMAGE_TYPES["PNG"], lambda head: head.startswith(_PNG_SIGNATURE), _png_whole),
    FileKind("jpeg", IMAGE_TYPES["JPEG"], lambda head: head.startswith(b"\xff\xd8\xff")),
    FileKind("webp", IMAGE_TYPES["WEBP"], _webp_head, _webp_whole),
    FileKind("fbx", MODEL_TYPES["fbx"], lambda head: head.startswith(_FBX_SIGNATURE)),
    FileKind("usdz", MODEL_TYPES["usdz"], _usdz_head, _zip_ends),
    FileKind("3mf", MODEL_TYPES["3mf"], _zip_head, _3mf_whole),
    FileKind("zip", MODEL_TYPES["zip"], _zip_head, _zip_ends),
    FileKind("gltf", MODEL_TYPES["gltf"], _gltf_head, _gltf_whole),
    FileKind("obj", MODEL_TYPES["obj"], _obj_head, _obj_whole),
    FileKind("stl", MODEL_TYPES["stl"], _stl_head, _stl_whole),
)
KINDS: dict[str, FileKind] = {kind.name: kind for kind in _ALL}


def kind(name: str) -> FileKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown file kind {name!r}; known: {', '.join(KINDS)}") from None
