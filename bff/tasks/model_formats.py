"""The model file formats a task can produce: the one place for their names, file
extensions and content types.

A format's name is its file extension, so a result file is named ``model.<name>``. Tripo
says which format it produced only through the extension of its output URL's path
(providers.md), so that is where the format is read. A format that comes with side files
(OBJ with its material and textures, glTF with separate textures) may arrive as one
``.zip``: it is then recorded as ``zip``, and the app unpacks it.
"""

from __future__ import annotations

from pathlib import PurePosixPath

CONTENT_TYPES = {
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "usdz": "model/vnd.usdz+zip",
    "stl": "model/stl",
    "3mf": "model/3mf",
    "obj": "model/obj",
    "fbx": "application/octet-stream",  # FBX has no registered media type
    "zip": "application/zip",
}

# What a path without a known extension is taken to be: what Tripo's generation and
# re-texture tasks produce.
USUAL_FORMAT = "glb"


def format_of_path(path: str) -> str:
    """The format a file path's extension names (``/x/model.USDZ`` -> ``usdz``)."""
    extension = PurePosixPath(path).suffix.lower().removeprefix(".")
    return extension if extension in CONTENT_TYPES else USUAL_FORMAT
