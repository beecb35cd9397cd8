"""The stand-in's model files: the GLB of generation tasks and the formats Tripo's
convert task produces, standard library only.

Each builder makes a small file that a reader of that format accepts, from the same cube
as the stand-in's GLB (sandbox.assets). Only the glTF carries the texture; the other
formats hold the geometry, which is what a client's handling of a converted file needs.
The bytes are deterministic and built once per process.
"""

import base64
import functools
import io
import json
import math
import struct
import zipfile
from collections.abc import Callable
from typing import NamedTuple
from xml.etree import ElementTree

from sandbox import assets

_USDZ_ALIGNMENT = 64
# A private zip extra-field id for the alignment padding: readers skip ids they do not know.
_USDZ_PADDING_ID = 0x1986
# A fixed timestamp keeps the archives' bytes the same from run to run.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_LOCAL_HEADER_SIZE = 30
_EXTRA_FIELD_HEADER_SIZE = 4

_STL_HEADER = b"tripo sandbox binary STL"  # must not start with "solid": that means ASCII STL
_FBX_MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
_FBX_VERSION = 7400
_FBX_NULL_RECORD = b"\0" * 13  # ends a node list in FBX versions before 7500

_3MF_CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_3MF_MODEL_PATH = "3D/3dmodel.model"
_3MF_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>
</Types>
"""
_3MF_RELS = f"""<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Target="/{_3MF_MODEL_PATH}" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>
"""


class ModelFile(NamedTuple):
    """How a model file is named, served and built (`build(textured)` -> bytes)."""

    extension: str
    content_type: str
    build: Callable[[bool], bytes]


@functools.cache
def gltf(textured: bool) -> bytes:
    """A .gltf JSON file whose one buffer is embedded as a base64 data URI."""
    document, binary = assets.cube_gltf(textured)
    encoded = base64.b64encode(binary).decode()
    document["buffers"][0]["uri"] = f"data:application/octet-stream;base64,{encoded}"
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@functools.cache
def obj() -> bytes:
    corners, triangles = assets.cube_triangles()
    lines = ["# tripo sandbox cube", "o model"]
    lines += [f"v {_numbers(corner)}" for corner in corners]
    lines += ["f " + " ".join(str(i + 1) for i in triangle) for triangle in triangles]  # 1-based
    return ("\n".join(lines) + "\n").encode()


@functools.cache
def stl() -> bytes:
    """Binary STL: an 80-byte header, the triangle count, then 50 bytes per triangle."""
    corners, triangles = assets.cube_triangles()
    parts = [_STL_HEADER.ljust(80, b"\0"), struct.pack("<I", len(triangles))]
    for triangle in triangles:
        points = [corners[i] for i in triangle]
        parts.append(struct.pack("<12fH", *_unit_normal(*points), *(c for p in points for c in p), 0))
    return b"".join(parts)


@functools.cache
def three_mf() -> bytes:
    """A 3MF package: the OPC content types and relationship, and the core-spec model."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, content in (("[Content_Types].xml", _3MF_CONTENT_TYPES.encode()),
                              ("_rels/.rels", _3MF_RELS.encode()),
                              (_3MF_MODEL_PATH, _3mf_model())):
            package.writestr(_zip_entry(name, zipfile.ZIP_DEFLATED), content)
    return buffer.getvalue()


@functools.cache
def usdz() -> bytes:
    """A USDZ package: an uncompressed zip whose first file is the USD layer and whose
    files' data each start on a 64-byte boundary, as the USDZ spec requires."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as package:
        _write_aligned(package, buffer, "model.usda", _usda())
    return buffer.getvalue()


@functools.cache
def fbx() -> bytes:
    """Only recognisable as FBX, not a model: the binary header (magic and version) and
    an empty node list, with no geometry. Enough for a client that checks what it got
    and stores or forwards the file; an FBX reader would show an empty scene."""
    return _FBX_MAGIC + struct.pack("<I", _FBX_VERSION) + _FBX_NULL_RECORD


# What a generation or re-texture task produces.
GLB = ModelFile("glb", "model/gltf-binary",
                lambda textured: assets.textured_glb() if textured else assets.plain_glb())

# Tripo's convert formats; the extension is the one Tripo's output URL path ends with.
BY_FORMAT = {
    "GLTF": ModelFile("gltf", "model/gltf+json", gltf),
    "USDZ": ModelFile("usdz", "model/vnd.usdz+zip", lambda textured: usdz()),
    "FBX": ModelFile("fbx", "application/octet-stream", lambda textured: fbx()),
    "OBJ": ModelFile("obj", "model/obj", lambda textured: obj()),
    "STL": ModelFile("stl", "model/stl", lambda textured: stl()),
    "3MF": ModelFile("3mf", "model/3mf", lambda textured: three_mf()),
}


def _numbers(values) -> str:
    return " ".join(f"{v:g}" for v in values)


def _unit_normal(a, b, c) -> tuple[float, float, float]:
    (ux, uy, uz), (vx, vy, vz) = ([q - p for p, q in zip(a, b, strict=True)],
                                  [q - p for p, q in zip(a, c, strict=True)])
    normal = (uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx)
    length = math.sqrt(sum(n * n for n in normal))
    return tuple(n / length for n in normal)


def _3mf_model() -> bytes:
    corners, triangles = assets.cube_triangles()
    ElementTree.register_namespace("", _3MF_CORE)
    model = ElementTree.Element(f"{{{_3MF_CORE}}}model", unit="meter")
    model.set("xml:lang", "en-US")
    resources = ElementTree.SubElement(model, f"{{{_3MF_CORE}}}resources")
    item = ElementTree.SubElement(resources, f"{{{_3MF_CORE}}}object", id="1", type="model")
    mesh = ElementTree.SubElement(item, f"{{{_3MF_CORE}}}mesh")
    vertices = ElementTree.SubElement(mesh, f"{{{_3MF_CORE}}}vertices")
    for corner in corners:
        ElementTree.SubElement(vertices, f"{{{_3MF_CORE}}}vertex",
                               dict(zip(("x", "y", "z"), (f"{c:g}" for c in corner), strict=True)))
    faces = ElementTree.SubElement(mesh, f"{{{_3MF_CORE}}}triangles")
    for triangle in triangles:
        ElementTree.SubElement(faces, f"{{{_3MF_CORE}}}triangle",
                               dict(zip(("v1", "v2", "v3"), map(str, triangle), strict=True)))
    build = ElementTree.SubElement(model, f"{{{_3MF_CORE}}}build")
    ElementTree.SubElement(build, f"{{{_3MF_CORE}}}item", objectid="1")
    return ElementTree.tostring(model, encoding="UTF-8", xml_declaration=True)


def _usda() -> bytes:
    corners, triangles = assets.cube_triangles()
    points = ", ".join(f"({c[0]:g}, {c[1]:g}, {c[2]:g})" for c in corners)
    counts = ", ".join("3" for _ in triangles)
    indices = ", ".join(str(i) for triangle in triangles for i in triangle)
    return f"""#usda 1.0
(
    defaultPrim = "model"
    metersPerUnit = 1
    upAxis = "Y"
)

def Xform "model" (
    kind = "component"
)
{{
    def Mesh "cube"
    {{
        float3[] extent = [(-0.5, -0.5, -0.5), (0.5, 0.5, 0.5)]
        int[] faceVertexCounts = [{counts}]
        int[] faceVertexIndices = [{indices}]
        point3f[] points = [{points}]
        uniform token subdivisionScheme = "none"
    }}
}}
""".encode()


def _write_aligned(package: zipfile.ZipFile, buffer: io.BytesIO, name: str, data: bytes) -> None:
    """Store `data` with an extra field padding its local header so that the data
    starts on a 64-byte boundary of the archive (zipfile writes the header at the
    buffer's current end)."""
    data_start = buffer.tell() + _ZIP_LOCAL_HEADER_SIZE + len(name.encode())
    padding = -(data_start + _EXTRA_FIELD_HEADER_SIZE) % _USDZ_ALIGNMENT
    info = _zip_entry(name, zipfile.ZIP_STORED)
    info.extra = struct.pack("<HH", _USDZ_PADDING_ID, padding) + b"\0" * padding
    package.writestr(info, data)


def _zip_entry(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = compress_type
    return info
