"""Small, valid output files for the Tripo stand-in, built with the standard library only.

The stand-in serves these where real Tripo serves a generated model and its preview
render: a binary glTF 2.0 cube (textured or plain) and a PNG picture. The bytes are
deterministic and built once per process. The cube's mesh is also exposed
(`cube_gltf`, `cube_triangles`) for the converted formats in sandbox.model_formats.
"""

import functools
import json
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_GLB_MAGIC = 0x46546C67  # b"glTF" read as little-endian uint32
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_FLOAT = 5126
_UNSIGNED_SHORT = 5123
_NEAREST = 9728

# (outward normal, one in-face axis); the second axis is normal x first, so the
# corners below wind counter-clockwise seen from outside, as glTF requires.
_FACES = (
    ((1, 0, 0), (0, 0, -1)),
    ((-1, 0, 0), (0, 0, 1)),
    ((0, 1, 0), (1, 0, 0)),
    ((0, -1, 0), (1, 0, 0)),
    ((0, 0, 1), (1, 0, 0)),
    ((0, 0, -1), (-1, 0, 0)),
)
_CORNERS = ((-1, -1), (1, -1), (1, 1), (-1, 1))

_ORANGE = (235, 120, 40)
_CREAM = (250, 240, 220)
_SLATE = (60, 70, 90)


def encode_png(width: int, height: int, pixel) -> bytes:
    """Encode an 8-bit RGB PNG; `pixel(x, y)` returns an (r, g, b) tuple."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type "None" for every scanline
        for x in range(width):
            rows.extend(pixel(x, y))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@functools.cache
def preview_png() -> bytes:
    """A 256x256 preview render: a checkered square on a vertical gradient."""
    def pixel(x, y):
        if 64 <= x < 192 and 64 <= y < 192:
            return _ORANGE if (x // 16 + y // 16) % 2 else _CREAM
        shade = 40 + y * 120 // 255
        return (shade, shade, shade + 30)

    return encode_png(256, 256, pixel)


@functools.cache
def texture_png() -> bytes:
    """The 64x64 checker image embedded in the textured model."""
    return encode_png(64, 64, lambda x, y: _ORANGE if (x // 8 + y // 8) % 2 else _CREAM)


@functools.cache
def textured_glb() -> bytes:
    """A unit cube whose material samples an embedded PNG through its UVs."""
    return _cube_glb(textured=True)


@functools.cache
def plain_glb() -> bytes:
    """The same cube with a flat base colour and no texture or image."""
    return _cube_glb(textured=False)


def _cube_mesh():
    positions, normals, uvs, indices = [], [], [], []
    for normal, u_axis in _FACES:
        v_axis = _cross(normal, u_axis)
        base = len(positions)
        for s, t in _CORNERS:
            corner = (n + s * u + t * v for n, u, v in zip(normal, u_axis, v_axis, strict=True))
            positions.append(tuple(0.5 * c for c in corner))
            normals.append(normal)
            uvs.append(((s + 1) / 2, (1 - t) / 2))  # glTF's UV origin is the image's top left
        indices.extend(base + i for i in (0, 1, 2, 0, 2, 3))
    return positions, normals, uvs, indices


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def cube_triangles() -> tuple[list[tuple[float, float, float]], list[tuple[int, int, int]]]:
    """The cube as 8 shared corners and 12 triangles indexing them, wound
    counter-clockwise seen from outside: formats that describe a closed solid (3MF)
    need the faces to share their corners, which the glTF mesh repeats per face."""
    positions, _, _, indices = _cube_mesh()
    corners = list(dict.fromkeys(positions))
    welded = [corners.index(positions[i]) for i in indices]
    return corners, [tuple(welded[i:i + 3]) for i in range(0, len(welded), 3)]


def _cube_glb(textured: bool) -> bytes:
    return _pack_glb(*cube_gltf(textured))


def cube_gltf(textured: bool) -> tuple[dict, bytes]:
    """The cube's glTF JSON and its one binary buffer, which the JSON does not locate:
    the caller either packs it in a GLB or gives the buffer a URI."""
    positions, normals, uvs, indices = _cube_mesh()
    blob = _BufferBuilder()
    index_view = blob.add(struct.pack(f"<{len(indices)}H", *indices), _ELEMENT_ARRAY_BUFFER)
    position_view = blob.add(_floats(positions), _ARRAY_BUFFER)
    normal_view = blob.add(_floats(normals), _ARRAY_BUFFER)
    accessors = [
        _accessor(index_view, _UNSIGNED_SHORT, len(indices), "SCALAR"),
        _accessor(position_view, _FLOAT, len(positions), "VEC3",
                  min=[-0.5, -0.5, -0.5], max=[0.5, 0.5, 0.5]),
        _accessor(normal_view, _FLOAT, len(normals), "VEC3"),
    ]
    primitive = {"attributes": {"POSITION": 1, "NORMAL": 2}, "indices": 0, "material": 0}
    gltf = {
        "asset": {"version": "2.0", "generator": "tripo sandbox"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "model"}],
        "meshes": [{"primitives": [primitive]}],
        "accessors": accessors,
    }
    if textured:
        # UVs only where a texture uses them: an unused attribute is a validator finding.
        uv_view = blob.add(_floats(uvs), _ARRAY_BUFFER)
        accessors.append(_accessor(uv_view, _FLOAT, len(uvs), "VEC2"))
        primitive["attributes"]["TEXCOORD_0"] = len(accessors) - 1
        gltf.update(_texture_parts(blob.add(texture_png())))
    else:
        gltf["materials"] = [{"name": "plain", "pbrMetallicRoughness": {
            "baseColorFactor": [c / 255 for c in _SLATE] + [1.0], "metallicFactor": 0.0}}]
    gltf["bufferViews"] = blob.views
    gltf["buffers"] = [{"byteLength": len(blob.data)}]
    return gltf, bytes(blob.data)


def _accessor(view: int, component_type: int, count: int, kind: str, **extra) -> dict:
    return {"bufferView": view, "componentType": component_type, "count": count, "type": kind,
            **extra}


def _texture_parts(image_view: int) -> dict:
    return {
        "materials": [{"name": "textured", "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0}, "metallicFactor": 0.0}}],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": _NEAREST, "minFilter": _NEAREST}],
        "images": [{"bufferView": image_view, "mimeType": "image/png"}],
    }


def _floats(vectors) -> bytes:
    flat = [c for vector in vectors for c in vector]
    return struct.pack(f"<{len(flat)}f", *flat)


class _BufferBuilder:
    """Appends byte ranges to one buffer, each 4-byte aligned as glTF accessors need."""

    def __init__(self):
        self.data = bytearray()
        self.views = []

    def add(self, chunk: bytes, target: int | None = None) -> int:
        self.data.extend(b"\0" * (-len(self.data) % 4))
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(chunk)}
        if target is not None:
            view["target"] = target
        self.data.extend(chunk)
        self.views.append(view)
        return len(self.views) - 1


def _pack_glb(gltf: dict, binary: bytes) -> bytes:
    text = json.dumps(gltf, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 4)  # the spec pads the JSON chunk with spaces
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<III", _GLB_MAGIC, 2, total)
        + struct.pack("<II", len(text), _CHUNK_JSON) + text
        + struct.pack("<II", len(binary), _CHUNK_BIN) + binary
    )
