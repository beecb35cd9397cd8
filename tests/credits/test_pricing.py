"""Prices from what a task sends: Tripo's published table by default, one view vs several,
P1 models, texture quality, every number replaceable by a setting; OpenAI per image."""

from __future__ import annotations

import dataclasses

import pytest

from bff.credits.prices import TripoPrices
from bff.credits.pricing import tripo_price
from bff.settings import Settings, SettingsError
from bff.tasks.record import Kind, Service, Task
from tests.credits.building import credits_for
from tests.helpers import MINIMAL_LIVE_ENVIRON

URL = "https://example.com/view.png"
P1 = "P1-20260311"


def price(redis_client, kind: str, params: dict, service: str = Service.TRIPO, **settings_changes) -> int:
    task = Task.new(service=service, kind=kind, params=params, request_id="r", client="alice")
    return credits_for(redis_client, **settings_changes).price(task)


@pytest.mark.parametrize(("kind", "params", "standard", "p1"), [
    (Kind.TEXT_TO_MODEL, {"prompt": "a cat", "style": None, "texture": False}, 10, 30),
    (Kind.TEXT_TO_MODEL, {"prompt": "a cat", "style": "cartoon", "texture": True}, 20, 40),
    (Kind.SKETCH_TO_MODEL, {"image_url": URL, "texture": False}, 20, 40),
    (Kind.SKETCH_TO_MODEL, {"image_url": URL, "texture": True}, 30, 50),
    (Kind.IMAGE_TO_MODEL, {"image_urls": [URL], "texture": False}, 20, 40),
    (Kind.IMAGE_TO_MODEL, {"image_urls": [URL, None, None, None], "texture": True}, 30, 50),
    (Kind.IMAGE_TO_MODEL, {"image_urls": [URL, None, URL, URL], "texture": False}, 20, 40),
    (Kind.IMAGE_TO_MODEL, {"image_urls": [URL, URL], "texture": True}, 30, 50),
])
def test_tripo_generations_cost_the_published_price(redis_client, kind, params, standard, p1):
    assert price(redis_client, kind, params) == standard
    assert price(redis_client, kind, params, tripo_model_version=P1) == p1


def test_one_view_takes_the_single_image_price_and_several_the_multiview_price(redis_client):
    distinct = TripoPrices.parse("image_textured=31,multiview_textured=37")

    assert price(redis_client, Kind.IMAGE_TO_MODEL, {"image_urls": [URL, None], "texture": True},
                 bff_tripo_prices=distinct) == 31
    assert price(redis_client, Kind.IMAGE_TO_MODEL, {"image_urls": [URL, None, URL], "texture": True},
                 bff_tripo_prices=distinct) == 37


def test_refine_and_convert_cost_their_own_prices_whatever_the_model_version(redis_client):
    refine = {"draft_model_task_id": "t", "draft_provider_task_id": "p"}
    convert = {"model_task_id": "t", "source_provider_task_id": "p", "format": "stl", "face_limit": None,
               "texture_size": None}

    assert price(redis_client, Kind.REFINE_MODEL, refine) == 20
    assert price(redis_client, Kind.REFINE_MODEL, refine, tripo_model_version=P1) == 20
    assert price(redis_client, Kind.CONVERT_MODEL, convert) == 10
    assert price(redis_client, Kind.CONVERT_MODEL, convert, bff_tripo_prices=TripoPrices.parse("convert=12")) == 12


@pytest.mark.parametrize(("quality", "credits"), [("standard", 30), ("detailed", 50), ("extreme", 60)])
def test_texture_quality_adds_to_a_textured_generation_only(quality, credits):
    body = {"input": URL, "model": "v3.1-20260211", "texture": True, "texture_quality": quality}

    assert tripo_price("/generation/image-to-model", body, TripoPrices()) == credits
    assert tripo_price("/generation/image-to-model", {**body, "texture": False}, TripoPrices()) == 20


@pytest.mark.parametrize(("n", "credits"), [(1, 5), (4, 20), (10, 50)])
def test_openai_images_cost_per_image(redis_client, n, credits):
    params = {"prompt": "p", "n": n, "size": "1024x1024"}

    assert price(redis_client, Kind.IMAGE_TO_IMAGE, params, service=Service.OPENAI) == credits
    assert price(redis_client, Kind.IMAGE_TO_IMAGE, params, service=Service.OPENAI,
                 bff_openai_credits_per_image=7) == 7 * n


def test_the_price_settings_replace_only_the_named_prices():
    settings = Settings.from_env({**_required(), "BFF_TRIPO_PRICES": "refine=25, convert=12",
                                  "BFF_OPENAI_CREDITS_PER_IMAGE": "4"})

    assert settings.bff_tripo_prices == dataclasses.replace(TripoPrices(), refine=25, convert=12)
    assert settings.bff_openai_credits_per_image == 4


@pytest.mark.parametrize(("value", "fragment"), [
    ("refin=25", "unknown price 'refin'"),
    ("refine=-1", "whole number"),
    ("refine=2.5", "whole number"),
])
def test_a_malformed_price_setting_is_named(value, fragment):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**_required(), "BFF_TRIPO_PRICES": value})

    assert str(raised.value).startswith("BFF_TRIPO_PRICES") and fragment in str(raised.value)


def _required() -> dict:
    return MINIMAL_LIVE_ENVIRON
