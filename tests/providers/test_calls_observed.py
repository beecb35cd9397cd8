"""Every provider call is reported to the client's observer: which provider, which
operation, the outcome the error classifier gave it, and how long it took."""

from __future__ import annotations

import base64

import pytest
import requests

from bff.providers.errors import ProviderError
from bff.providers.openai import ImageEdit, OpenAIClient
from bff.providers.tripo import TripoClient
from tests.conftest import OPENAI_KEY, TRIPO_BASE_URL, TRIPO_KEY
from tests.images import encoded

OPENAI_BASE_URL = "https://openai.test/v1"


@pytest.fixture
def seen() -> list[tuple]:
    return []


@pytest.fixture
def tripo(seen) -> TripoClient:
    return TripoClient(TRIPO_BASE_URL, TRIPO_KEY, observe=lambda *call: seen.append(call))


@pytest.fixture
def openai(seen) -> OpenAIClient:
    return OpenAIClient(OPENAI_BASE_URL, OPENAI_KEY, observe=lambda *call: seen.append(call))


def without_time(calls: list[tuple]) -> list[tuple]:
    assert all(isinstance(call[3], float) and call[3] >= 0 for call in calls)
    return [call[:3] for call in calls]


def test_tripo_calls_report_their_operation_and_outcome(tripo, seen, requests_mock):
    create = f"{TRIPO_BASE_URL}/generation/text-to-model"
    requests_mock.post(create, [
        {"json": {"code": 0, "data": {"task_id": "t-1"}}},
        {"status_code": 429, "json": {"code": 2000, "message": "too many tasks"}},
        {"status_code": 500, "json": {"code": 1000, "message": "server error"}},
        {"status_code": 400, "json": {"code": 2008, "message": "content policy"}},
    ])
    requests_mock.get(f"{TRIPO_BASE_URL}/tasks/t-1", json={"code": 0, "data": {"task_id": "t-1"}})
    requests_mock.post(f"{TRIPO_BASE_URL}/tasks/list", json={"code": 0, "data": {"tasks": {}, "missed": ["t-2"]}})

    tripo.create_task("/generation/text-to-model", {"prompt": "a fox"})
    for _ in range(3):
        with pytest.raises(ProviderError):
            tripo.create_task("/generation/text-to-model", {"prompt": "a fox"})
    tripo.get_task("t-1")
    tripo.get_tasks(["t-2"])

    assert without_time(seen) == [
        ("tripo", "create", "ok"), ("tripo", "create", "retry"), ("tripo", "create", "unknown"),
        ("tripo", "create", "final"), ("tripo", "read", "ok"), ("tripo", "read_batch", "ok"),
    ]


def test_a_call_without_an_answer_is_reported_too(tripo, seen, requests_mock):
    requests_mock.post(f"{TRIPO_BASE_URL}/generation/text-to-model", exc=requests.exceptions.ReadTimeout)
    requests_mock.post(f"{TRIPO_BASE_URL}/tasks/list", exc=requests.exceptions.ConnectTimeout)

    with pytest.raises(ProviderError):
        tripo.create_task("/generation/text-to-model", {"prompt": "a fox"})
    with pytest.raises(ProviderError):
        tripo.get_tasks(["t-1"])

    assert without_time(seen) == [("tripo", "create", "unknown"), ("tripo", "read_batch", "retry")]


def test_an_answer_that_breaks_the_contract_is_reported_as_classified(tripo, seen, requests_mock):
    requests_mock.post(f"{TRIPO_BASE_URL}/generation/text-to-model", json={"code": 0, "data": {}})

    with pytest.raises(ProviderError):
        tripo.create_task("/generation/text-to-model", {"prompt": "a fox"})

    assert without_time(seen) == [("tripo", "create", "unknown")]


def test_openai_edits_are_reported(openai, seen, requests_mock):
    image = base64.b64encode(encoded("PNG")).decode()
    requests_mock.post(f"{OPENAI_BASE_URL}/images/edits", [
        {"json": {"data": [{"b64_json": image}]}},
        {"status_code": 400, "json": {"error": {"code": "moderation_blocked", "message": "no"}}},
    ])
    edit = ImageEdit(image=encoded("PNG"), filename="a.png", content_type="image/png", prompt="a robot",
                     model="gpt-image", n=1, size="1024x1024")

    openai.edit_image(edit)
    with pytest.raises(ProviderError):
        openai.edit_image(edit)

    assert without_time(seen) == [("openai", "edit", "ok"), ("openai", "edit", "final")]
