"""Swagger UI and the OpenAPI spec: complete, and usable with no internet."""

from __future__ import annotations

import re


def test_the_spec_documents_every_route_with_its_errors(client):
    spec = client.get("/openapi.json").get_json()

    assert set(spec["paths"]) == {
        "/generate/text-to-model", "/generate/sketch-to-model", "/generate/image-to-model",
        "/generate/refine-model", "/generate/convert-model", "/generate/image-to-image", "/tasks/{task_id}/status",
        "/tasks/{task_id}/images/{index}", "/tasks/{task_id}/result",
        "/tasks/{task_id}/preview", "/me", "/styles", "/healthz", "/readyz",
    }
    generate = spec["paths"]["/generate/text-to-model"]["post"]
    assert {"202", "422", "503"} <= set(generate["responses"])
    assert generate["requestBody"]["content"]["application/json"]["example"]["prompt"]
    assert {"200", "404", "422"} <= set(spec["paths"]["/tasks/{task_id}/status"]["get"]["responses"])
    error = spec["components"]["schemas"]["ErrorResponse"]["properties"]
    assert error["code"]["example"] == 422 and error["message"]["example"] and error["errors"]["example"]
    assert "Location" in spec["paths"]["/tasks/{task_id}/result"]["get"]["responses"]["302"]["headers"]


def test_swagger_ui_loads_only_assets_the_app_serves(client):
    page = client.get("/docs")

    assert page.status_code == 200
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.get_data(as_text=True))
    assert assets and all(asset.startswith("/docs/assets/") for asset in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_the_multiview_order_is_shown_with_an_example(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/generate/image-to-model"]["post"]

    example = operation["requestBody"]["content"]["application/json"]["example"]
    assert example["image_urls"][2] is None and len(example["image_urls"]) == 4
    assert "front, left, back, right" in operation["description"]
    assert {"404", "409"} <= set(spec["paths"]["/generate/refine-model"]["post"]["responses"])


def test_the_conversion_documents_its_reuse_and_its_defaults(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/generate/convert-model"]["post"]

    assert {"200", "202", "404", "409", "422", "429"} <= set(operation["responses"])
    schema = spec["components"]["schemas"]["ConvertModelRequest"]["properties"]
    assert schema["format"]["enum"] == ["usdz", "stl", "3mf", "obj", "fbx", "gltf"]
    assert "Default: 100000 for usdz; else the full geometry." in schema["face_limit"]["description"]
    assert "Default: 2048 for usdz; else 4096." in schema["texture_size"]["description"]


def test_the_upload_is_documented_as_one_multipart_body_with_a_file(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/generate/image-to-image"]["post"]

    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    schema = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert schema["properties"]["image"] == {"type": "string", "format": "binary",
                                             "description": schema["properties"]["image"]["description"]}
    assert {"image", "prompt"} <= set(schema["required"])
    assert {"prompt", "style", "n", "size", "background"} <= set(schema["properties"])
    assert "413" in operation["responses"]


def test_the_idempotency_key_is_documented(client):
    spec = client.get("/openapi.json").get_json()

    parameters = spec["paths"]["/generate/text-to-model"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters)
