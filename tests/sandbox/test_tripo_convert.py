"""The Tripo stand-in's convert task (`POST /v3/models/convert`), over real HTTP."""

import io
import json
import re
import struct
import uuid
import zipfile
from xml.etree import ElementTree

import pytest
import requests
import trimesh

from tests.sandbox.test_tripo_standin import RETEXTURE, assert_error, download

CONVERT = "/models/convert"
CUBE_TRIANGLES = 12
CUBE_CORNERS = 8
ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... name length, extra length
CORE_3MF = "{http://schemas.microsoft.com/3dmanufacturing/core/2015/02}"


def convert(tripo, source: str, format: str = "USDZ", **options) -> requests.Response:
    return tripo.post(CONVERT, {"input": source, "format": format, **options})


def finished_conversion(tripo, format: str, source_options: dict | None = None,
                        **options) -> dict:
    source = tripo.finished_task(**(source_options or {}))["task_id"]
    response = convert(tripo, source, format, **options)
    assert response.status_code == 200, response.text
    tripo.clock.advance(tripo.sandbox.task_seconds)
    return tripo.task(response.json()["data"]["task_id"])


def downloaded_model(tripo, format: str, extension: str, content_type: str,
                     **options) -> bytes:
    url = finished_conversion(tripo, format, **options)["output"]["model_url"]
    assert url.split("?")[0].endswith("/model." + extension)
    response = download(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    return response.content


def load_mesh(content: bytes, file_type: str) -> trimesh.Trimesh:
    mesh = trimesh.load(io.BytesIO(content), file_type=file_type, force="mesh")
    assert len(mesh.faces) == CUBE_TRIANGLES
    assert mesh.volume == pytest.approx(1.0)  # the unit cube, its faces wound outwards
    return mesh


# --- creating and running -------------------------------------------------------


def test_convert_is_recorded_and_runs_like_other_tasks(tripo):
    source = tripo.finished_task()["task_id"]
    body = {"input": source, "format": "USDZ", "face_limit": 100000, "texture_size": 2048,
            "pivot_to_center_bottom": True, "part_names": ["seat", "legs"]}
    response = tripo.post(CONVERT, body)
    assert response.status_code == 200, response.text
    task_id = response.json()["data"]["task_id"]
    assert tripo.sandbox.creates()[-1].json == body

    assert tripo.task(task_id)["status"] == "queued"
    tripo.clock.advance(tripo.sandbox.task_seconds / 2)
    running = tripo.task(task_id)
    assert (running["type"], running["status"], running["output"]) == ("convert_model", "running", {})
    tripo.clock.advance(tripo.sandbox.task_seconds / 2)
    done = tripo.task(task_id)
    assert (done["status"], done["credits_consumed"]) == ("success", 10)
    preview = download(done["output"]["rendered_image_url"])
    assert preview.headers["Content-Type"] == "image/png"


def test_a_retextured_model_converts(tripo):
    source = tripo.finished_task(texture=False, pbr=False)["task_id"]
    retexture = tripo.post(RETEXTURE, {"input": source, "model": "v3.0-20250812"})
    tripo.clock.advance(tripo.sandbox.task_seconds)
    assert convert(tripo, retexture.json()["data"]["task_id"], "STL").status_code == 200


def test_unknown_keys_are_ignored_as_on_the_other_endpoints(tripo):
    source = tripo.finished_task()["task_id"]
    assert convert(tripo, source, "OBJ", future_option=1).status_code == 200


# --- the converted files --------------------------------------------------------


def test_usdz_is_an_aligned_stored_zip_led_by_a_usd_layer(tripo):
    package = downloaded_model(tripo, "USDZ", "usdz", "model/vnd.usdz+zip")
    entries = zipfile.ZipFile(io.BytesIO(package)).infolist()
    assert entries[0].filename == "model.usda"
    for entry in entries:
        assert entry.compress_type == zipfile.ZIP_STORED
        signature, name_length, extra_length = ZIP_LOCAL_HEADER.unpack_from(package, entry.header_offset)
        assert signature == b"PK\x03\x04"
        data_start = entry.header_offset + ZIP_LOCAL_HEADER.size + name_length + extra_length
        assert data_start % 64 == 0, entry.filename

    layer = zipfile.ZipFile(io.BytesIO(package)).read("model.usda").decode()
    assert layer.startswith("#usda 1.0\n")
    assert 'def Mesh "cube"' in layer
    counts = re.search(r"int\[\] faceVertexCounts = \[([^\]]*)\]", layer).group(1).split(", ")
    indices = re.search(r"int\[\] faceVertexIndices = \[([^\]]*)\]", layer).group(1).split(", ")
    points = re.findall(r"\(([-\d.]+), ([-\d.]+), ([-\d.]+)\)",
                        re.search(r"point3f\[\] points = \[(.*)\]", layer).group(1))
    assert counts == ["3"] * CUBE_TRIANGLES and len(indices) == 3 * CUBE_TRIANGLES
    assert len(points) == CUBE_CORNERS and max(int(i) for i in indices) == CUBE_CORNERS - 1


def test_stl_is_binary_with_one_record_per_triangle(tripo):
    content = downloaded_model(tripo, "STL", "stl", "model/stl")
    assert not content.startswith(b"solid")  # that would announce ASCII STL
    assert struct.unpack_from("<I", content, 80)[0] == CUBE_TRIANGLES
    assert len(content) == 84 + 50 * CUBE_TRIANGLES
    mesh = load_mesh(content, "stl")
    assert mesh.is_watertight


def test_obj_is_text_with_vertices_and_faces(tripo):
    content = downloaded_model(tripo, "OBJ", "obj", "model/obj")
    lines = content.decode().splitlines()
    assert sum(line.startswith("v ") for line in lines) == CUBE_CORNERS
    assert sum(line.startswith("f ") for line in lines) == CUBE_TRIANGLES
    load_mesh(content, "obj")


@pytest.mark.parametrize("source_options, textured", [
    ({}, True), ({"texture": False, "pbr": False}, False),
])
def test_gltf_embeds_its_buffer_and_keeps_the_source_texture(tripo, source_options, textured):
    content = downloaded_model(tripo, "GLTF", "gltf", "model/gltf+json",
                               source_options=source_options)
    document = json.loads(content)
    assert document["asset"]["version"] == "2.0"
    assert document["buffers"][0]["uri"].startswith("data:application/octet-stream;base64,")
    assert bool(document.get("images")) is textured
    load_mesh(content, "gltf")


def test_3mf_holds_the_core_model_of_the_cube(tripo):
    package = zipfile.ZipFile(io.BytesIO(downloaded_model(tripo, "3MF", "3mf", "model/3mf")))
    assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= set(package.namelist())
    relationship = ElementTree.fromstring(package.read("_rels/.rels"))[0]
    assert relationship.get("Target") == "/3D/3dmodel.model"
    model = ElementTree.fromstring(package.read("3D/3dmodel.model"))
    assert model.tag == f"{CORE_3MF}model"
    mesh = model.find(f"{CORE_3MF}resources/{CORE_3MF}object/{CORE_3MF}mesh")
    vertices = mesh.findall(f"{CORE_3MF}vertices/{CORE_3MF}vertex")
    triangles = mesh.findall(f"{CORE_3MF}triangles/{CORE_3MF}triangle")
    assert len(vertices) == CUBE_CORNERS and len(triangles) == CUBE_TRIANGLES
    corners = [[float(v.get(axis)) for axis in "xyz"] for v in vertices]
    faces = [[int(t.get(key)) for key in ("v1", "v2", "v3")] for t in triangles]
    solid = trimesh.Trimesh(corners, faces, process=False)
    assert solid.is_watertight and solid.volume == pytest.approx(1.0)  # outward winding
    assert model.find(f"{CORE_3MF}build/{CORE_3MF}item").get("objectid") == "1"


def test_fbx_starts_with_the_binary_fbx_magic(tripo):
    content = downloaded_model(tripo, "FBX", "fbx", "application/octet-stream")
    assert content.startswith(b"Kaydara FBX Binary  \x00\x1a\x00")
    assert struct.unpack_from("<I", content, 23)[0] >= 7000


def test_quad_forces_fbx_whatever_format_was_asked(tripo):
    content = downloaded_model(tripo, "USDZ", "fbx", "application/octet-stream", quad=True)
    assert content.startswith(b"Kaydara FBX Binary")


def test_converted_urls_expire_like_other_outputs(tripo):
    task = finished_conversion(tripo, "STL")
    tripo.clock.advance(tripo.sandbox.url_ttl_seconds + 1)
    expired = download(task["output"]["model_url"])
    assert expired.status_code == 403 and b"Request has expired." in expired.content
    assert download(tripo.task(task["task_id"])["output"]["model_url"]).status_code == 200


# --- refusals -------------------------------------------------------------------


def assert_refused(tripo, body: dict) -> None:
    created = len(tripo.sandbox.tasks)
    assert_error(tripo.post(CONVERT, body), 400, 1004)
    assert len(tripo.sandbox.tasks) == created


@pytest.mark.parametrize("source", [str(uuid.uuid4()), None, ["not", "an", "id"]])
def test_unknown_or_missing_source_is_1004(tripo, source):
    assert_refused(tripo, {"input": source, "format": "USDZ"})


def test_unfinished_source_is_1004(tripo):
    assert_refused(tripo, {"input": tripo.create_text(), "format": "USDZ"})


def test_failed_source_is_1004(tripo):
    tripo.sandbox.set_outcome(None, "failed")
    assert_refused(tripo, {"input": tripo.finished_task()["task_id"], "format": "USDZ"})


def test_a_conversion_is_not_converted_again(tripo):
    conversion = finished_conversion(tripo, "GLTF")
    assert conversion["status"] == "success"
    assert_refused(tripo, {"input": conversion["task_id"], "format": "USDZ"})


# Lower case is refused on purpose: the stand-in accepts only the SDKs' upper case.
@pytest.mark.parametrize("format", ["usdz", "Usdz", "GLB", "PLY", "", None, 3])
def test_bad_format_is_1004(tripo, format):
    source = tripo.finished_task()["task_id"]
    assert_refused(tripo, {"input": source, "format": format})


def test_missing_format_is_1004(tripo):
    assert_refused(tripo, {"input": tripo.finished_task()["task_id"]})


def test_a_model_version_is_refused(tripo):
    source = tripo.finished_task()["task_id"]
    assert_refused(tripo, {"input": source, "format": "USDZ", "model": "v3.0-20250812"})


@pytest.mark.parametrize("option, value", [
    ("face_limit", 0), ("face_limit", -5), ("face_limit", 1000.5), ("face_limit", "1000"),
    ("face_limit", True), ("texture_size", "2048"), ("texture_size", 2048.0),
    ("texture_format", "jpeg"), ("texture_format", "GIF"), ("texture_format", 1),
    ("quad", "true"), ("force_symmetry", 1), ("flatten_bottom", None), ("pack_uv", "no"),
    ("bake", 0), ("with_animation", "false"), ("export_vertex_colors", 1),
    ("pivot_to_center_bottom", "yes"), ("flatten_bottom_threshold", "0.01"),
    ("flatten_bottom_threshold", True), ("scale_factor", "2"), ("scale_factor", None),
    ("export_orientation", 90), ("fbx_preset", ["blender"]), ("part_names", "seat"),
    ("part_names", ["seat", 2]),
])
def test_wrong_option_is_1004(tripo, option, value):
    source = tripo.finished_task()["task_id"]
    assert_refused(tripo, {"input": source, "format": "FBX", option: value})


def test_options_of_the_right_types_are_accepted(tripo):
    source = tripo.finished_task()["task_id"]
    options = {"face_limit": 1, "texture_size": 1024, "texture_format": "WEBP", "quad": False,
               "force_symmetry": True, "flatten_bottom": True, "flatten_bottom_threshold": 0.02,
               "scale_factor": 2, "pivot_to_center_bottom": False, "with_animation": False,
               "pack_uv": True, "bake": False, "export_vertex_colors": True,
               "export_orientation": "-y", "fbx_preset": "3dsmax", "part_names": []}
    assert convert(tripo, source, "FBX", **options).status_code == 200


# --- misbehaving on demand -----------------------------------------------------


def test_fail_next_strikes_convert_before_anything_is_created(tripo):
    source = tripo.finished_task()["task_id"]
    tripo.sandbox.fail_next(CONVERT, status=429, code=2000, message="Too many tasks.")
    assert_error(convert(tripo, source), 429, 2000)
    assert len(tripo.sandbox.tasks) == 1
    assert [r.path for r in tripo.sandbox.creates()].count("/v3" + CONVERT) == 1


def test_drop_after_processing_creates_the_conversion(tripo):
    source = tripo.finished_task()["task_id"]
    tripo.sandbox.drop_next(CONVERT, after_processing=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        convert(tripo, source)
    assert [t.type for t in tripo.sandbox.tasks.values()].count("convert_model") == 1


def test_set_outcome_and_complete_now_apply_to_conversions(tripo):
    source = tripo.finished_task()["task_id"]
    tripo.sandbox.set_outcome(None, "failed", error_code=1001, error_message="Conversion failed.")
    failing = convert(tripo, source).json()["data"]["task_id"]
    tripo.clock.advance(tripo.sandbox.task_seconds)
    failed = tripo.task(failing)
    assert (failed["status"], failed["error_message"], failed["output"]) == \
        ("failed", "Conversion failed.", {})

    fresh = convert(tripo, source, "STL").json()["data"]["task_id"]
    tripo.sandbox.complete_now(fresh)
    assert tripo.task(fresh)["output"]["model_url"].split("?")[0].endswith(".stl")
