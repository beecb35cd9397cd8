"""File kinds by their bytes: each sample is recognised as its own kind and no other, and
damaged files (truncated, wrong size, missing parts) are refused."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import pytest
import trimesh
from PIL import Image

from bff.results.file_kinds import HEAD_BYTES, KINDS, FileKind, kind
from sandbox import assets


def detect(data: bytes) -> FileKind | None:
    """The first kind, in the module's order (specific kinds before those they look like), that
    a whole file in memory matches."""
    return next((candidate for candidate in KINDS.values() if candidate.matches(data)), None)


def _image(format_name: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format=format_name)
    return buffer.getvalue()


def _zip(*entries: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def _mesh_export(file_type: str) -> bytes:
    exported = trimesh.creation.box().export(file_type=file_type)
    return exported.encode() if isinstance(exported, str) else exported


_CONTENT_TYPES_XML = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
_FBX_HEADER = b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400)

SAMPLES = {
    "glb": assets.plain_glb(),
    "gltf": json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": []}]}, indent=2).encode(),
    "png": assets.preview_png(),
    "jpeg": _image("JPEG"),
    "webp": _image("WEBP"),
    "fbx": _FBX_HEADER + bytes(200),
    "usdz": _zip(("model.usdc", b"PXR-USDC" + bytes(64)), ("textures/color.png", assets.preview_png())),
    "3mf": _zip(("[Content_Types].xml", _CONTENT_TYPES_XML), ("_rels/.rels", b"<Relationships/>"),
                ("3D/3dmodel.model", b"<model unit='millimeter'/>")),
    "stl": _mesh_export("stl"),
    "obj": _mesh_export("obj"),
    "zip": _zip(("readme.txt", b"hello")),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_each_sample_is_recognised_as_its_kind(name):
    assert kind(name).matches(SAMPLES[name])
    assert detect(SAMPLES[name]).name == name


@pytest.mark.parametrize("name", SAMPLES)
def test_no_kind_accepts_the_samples_of_the_others(name):
    others = [other for other, data in SAMPLES.items() if other != name and kind(name).matches(data)]
    # A usdz and a 3mf are zip archives too; nothing else may overlap.
    assert others == (["usdz", "3mf"] if name == "zip" else [])


def test_ascii_stl_and_a_binary_stl_whose_header_says_solid():
    ascii_stl = _mesh_export("stl_ascii")
    assert ascii_stl.startswith(b"solid")
    assert detect(ascii_stl).name == "stl"
    binary = SAMPLES["stl"]
    misleading = b"solid made by some exporter".ljust(80, b" ") + binary[80:]
    assert kind("stl").matches(misleading)  # decided by its size, not its first word
    assert not kind("stl").matches(b"solid cube\n  facet normal 0 0 1\n")  # no endsolid: cut short


@pytest.mark.parametrize("name", ["glb", "png", "webp", "usdz", "3mf", "zip", "stl", "gltf"])
def test_a_truncated_file_is_refused(name):
    data = SAMPLES[name]
    assert not kind(name).matches(data[: len(data) - 7])


def test_damaged_files_are_refused():
    assert not kind("obj").matches(b"# vertices only\nv 0 0 0\nv 1 0 0\nv 0 1 0\n")  # no face
    assert not kind("obj").matches(b"f 1 2 3\n")  # no vertex
    assert not kind("glb").matches(b"glTF" + struct.pack("<II", 1, 20) + bytes(8))  # glTF 1.0
    assert not kind("3mf").matches(_zip(("3D/other.model", b"<model/>")))  # no model part
    assert not kind("usdz").matches(_zip(("readme.txt", b"x"), ("model.usdc", b"PXR-USDC")))  # usd not first
    assert not kind("gltf").matches(b'\x00{"asset": {}}')
    assert not kind("png").matches(b"<html>Access denied</html>")
    assert detect(b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>') is None


def test_head_checks_need_only_the_first_bytes_of_a_large_file():
    large = {
        "glb": SAMPLES["glb"][:12] + bytes(HEAD_BYTES * 3),
        "png": SAMPLES["png"][:8] + bytes(HEAD_BYTES * 3),
        "fbx": _FBX_HEADER + bytes(HEAD_BYTES * 3),
        "usdz": _zip(("scene.usda", b"#usda 1.0\n" * HEAD_BYTES)),
        "obj": b"v 0 0 0\n" * HEAD_BYTES,
        "gltf": b'{"buffers": [{"uri": "data:,' + b"A" * HEAD_BYTES * 3 + b'"}]}',
    }
    for name, data in large.items():
        assert kind(name).head(data[:HEAD_BYTES]), name


def test_a_text_prefix_may_end_inside_a_character():
    text = "v 0 0 0 # é\n".encode() * 10
    cut = text[: text.index("é".encode()) + 1]  # the first of é's two bytes
    assert kind("obj").head(cut)
    assert not kind("obj").head(cut[:-1] + b"\xff")


def test_content_types():
    assert {name: kind(name).content_type for name in KINDS} == {
        "glb": "model/gltf-binary", "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp",
        "fbx": "application/octet-stream", "usdz": "model/vnd.usdz+zip", "3mf": "model/3mf",
        "zip": "application/zip", "gltf": "model/gltf+json", "obj": "model/obj", "stl": "model/stl",
    }
    with pytest.raises(ValueError, match="unknown file kind 'blend'"):
        kind("blend")
