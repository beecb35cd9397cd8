"""The style catalogue and GET /styles."""

from __future__ import annotations

from bff.tasks.record import Service
from bff.tasks.styles import STYLES, styled_prompt


def test_get_styles_lists_the_whole_catalogue(client):
    response = client.get("/styles")

    assert response.status_code == 200
    listed = response.get_json()["styles"]
    assert [style["name"] for style in listed] == list(STYLES)
    assert all(style["label"] and style["description"] for style in listed)
    assert {"realistic", "cartoon", "low-poly", "sculpture"} <= {style["name"] for style in listed}


def test_each_style_rewrites_the_prompt_differently_per_provider():
    for name in STYLES:
        for_tripo = styled_prompt("a fox", name, Service.TRIPO)
        for_openai = styled_prompt("a fox", name, Service.OPENAI)
        assert "a fox" in for_tripo and "a fox" in for_openai
        assert for_tripo != "a fox" and for_openai != "a fox" and for_tripo != for_openai


def test_no_style_leaves_the_prompt_alone():
    assert styled_prompt("a fox", None, Service.TRIPO) == "a fox"
