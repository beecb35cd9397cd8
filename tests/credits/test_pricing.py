"""Prices: Tripo's published table by default, every number overridable, one view vs
several choosing the single-image or multiview price, P1 models costing more."""

from __future__ import annotations

import pytest

from bff.credits import CONVERT_MODEL, PriceTable, default_prices, price_of

VERSION = "v3.1-20260211"
P1 = "P1-20260311"
REFINE_VERSION = "v3.0-20250812"
URL = "https://example.com/view.png"


def _price(service: str, kind: str, params: dict, model_version: str = VERSION, prices: PriceTable = PriceTable()):
    return price_of(service, kind, params, model_version=model_version, refine_model_version=REFINE_VERSION,
                    prices=prices)


@pytest.mark.parametrize(
    ("kind", "params", "standard", "p1"),
    [
        ("text_to_model", {"prompt": "a cat", "style": None, "texture": False}, 10, 30),
        ("text_to_model", {"prompt": "a cat", "style": "cartoon", "texture": True}, 20, 40),
        ("sketch_to_model", {"image_url": URL, "texture": False}, 20, 40),
        ("sketch_to_model", {"image_url": URL, "texture": True}, 30, 50),
        ("image_to_model", {"image_urls": [URL], "texture": False}, 20, 40),
        ("image_to_model", {"image_urls": [URL], "texture": True}, 30, 50),
        ("image_to_model", {"image_urls": [URL, None, URL, URL], "texture": False}, 20, 40),
        ("image_to_model", {"image_urls": [URL, URL], "texture": True}, 30, 50),
    ],
)
def test_tripo_generations_cost_the_published_price(kind, params, standard, p1):
    assert _price("tripo", kind, params) == standard
    assert _price("tripo", kind, params, model_version=P1) == p1


def test_a_generation_recorded_without_the_texture_flag_costs_the_textured_price():
    assert _price("tripo", "text_to_model", {"prompt": "a cat"}) == 20


def test_refine_and_convert_cost_their_assumed_prices_whatever_the_model_version():
    refine = {"draft_model_task_id": "t", "draft_provider_task_id": "p"}
    assert _price("tripo", "refine_model", refine) == 20
    assert _price("tripo", "refine_model", refine, model_version=P1) == 20
    assert _price("tripo", CONVERT_MODEL, {"format": "USDZ"}) == 10


@pytest.mark.parametrize(("n", "credits"), [(1, 5), (4, 20), (10, 50)])
def test_openai_images_cost_per_image(n, credits):
    assert _price("openai", "image_to_image", {"prompt": "p", "n": n, "size": "1024x1024"}) == credits
    assert _price("openai", "image_to_image", {"n": n}, prices=PriceTable(openai_credits_per_image=7)) == 7 * n


def test_one_view_takes_the_single_image_price_and_several_the_multiview_price():
    distinct = PriceTable().overridden({"image_textured": 31, "multiview_textured": 37, "p1_multiview_textured": 59})
    assert _price("tripo", "image_to_model", {"image_urls": [URL, None, None, None]}, prices=distinct) == 31
    assert _price("tripo", "image_to_model", {"image_urls": [URL, None, URL]}, prices=distinct) == 37
    assert _price("tripo", "image_to_model", {"image_urls": [URL, URL]}, model_version=P1, prices=distinct) == 59


def test_overrides_replace_only_the_named_prices_and_reject_unknown_names():
    prices = PriceTable().overridden({"refine": 25, "convert": 12})
    assert (prices.refine, prices.convert, prices.text_textured) == (25, 12, 20)
    with pytest.raises(ValueError, match="unknown price 'refin'"):
        PriceTable().overridden({"refin": 25})
    with pytest.raises(ValueError, match="at least 0"):
        PriceTable().overridden({"refine": -1})


def test_an_unknown_task_kind_has_no_price():
    with pytest.raises(ValueError):
        _price("tripo", "animate_model", {})
    with pytest.raises(ValueError):
        _price("openai", "text_to_model", {"texture": True})


def test_default_prices_list_every_route_with_its_default_options():
    assert default_prices(model_version=VERSION, refine_model_version=REFINE_VERSION, prices=PriceTable()) == {
        "text_to_model": 20,
        "sketch_to_model": 30,
        "image_to_model": 30,
        "refine_model": 20,
        "convert_model": 10,
        "image_to_image": 5,
    }
    p1 = default_prices(model_version=P1, refine_model_version=REFINE_VERSION, prices=PriceTable())
    assert (p1["text_to_model"], p1["image_to_model"], p1["refine_model"]) == (40, 50, 20)
