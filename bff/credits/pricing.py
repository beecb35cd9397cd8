"""What a task costs, in credits: the one place that prices a task.

1 credit = 1 Tripo credit = $0.01. The defaults are Tripo's published table
(providers.md, "Prices"); every number is a field of ``PriceTable`` so a deployment can
follow the console when Tripo changes it. OpenAI images are priced per image in the same
unit (``openai_credits_per_image``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Mapping

from ..openai_requests import IMAGE_TO_IMAGE
from ..tripo_requests import IMAGE_TO_MODEL, REFINE_MODEL, SKETCH_TO_MODEL, TEXT_TO_MODEL

TRIPO = "tripo"
OPENAI = "openai"
# A format conversion of a finished model (POST /models/convert). Its request builder
# lives on another branch; the kind name is the one that branch records.
CONVERT_MODEL = "convert_model"

# Tripo's low-poly model family costs more; its versions start with this.
P1_VERSION_PREFIX = "P1-"


@dataclass(frozen=True)
class PriceTable:
    """Credits per task. ``*_untextured`` / ``*_textured``: a generation with
    ``texture: false`` / true (standard texture quality, which is all the BFF sends)."""

    text_untextured: int = 10
    text_textured: int = 20
    image_untextured: int = 20
    image_textured: int = 30
    multiview_untextured: int = 20
    multiview_textured: int = 30
    p1_text_untextured: int = 30
    p1_text_textured: int = 40
    p1_image_untextured: int = 40
    p1_image_textured: int = 50
    p1_multiview_untextured: int = 40
    p1_multiview_textured: int = 50
    refine: int = 20  # a re-texture at detailed quality: not published, assumed
    convert: int = 10  # a format conversion: not published, assumed
    openai_credits_per_image: int = 5

    def overridden(self, overrides: Mapping[str, int]) -> "PriceTable":
        """This table with some prices replaced, for a setting such as
        ``refine=25,convert=12``; an unknown name or a negative price is a ValueError."""
        known = {field.name for field in fields(self)}
        for name, credits in overrides.items():
            if name not in known:
                raise ValueError(f"unknown price {name!r}; known: {', '.join(sorted(known))}")
            if not isinstance(credits, int) or credits < 0:
                raise ValueError(f"price {name!r} must be a whole number of credits, at least 0")
        return replace(self, **overrides)


def _generation_route(kind: str, params: dict) -> str:
    """Which Tripo generation endpoint a model task goes to. Mirrors the choice in
    bff.tripo_requests: one view is a single-image generation, more is multiview."""
    if kind == TEXT_TO_MODEL:
        return "text"
    if kind == SKETCH_TO_MODEL:
        return "image"
    if kind == IMAGE_TO_MODEL:
        views = sum(view is not None for view in params["image_urls"])
        return "image" if views == 1 else "multiview"
    raise ValueError(f"no price for tripo task kind {kind!r}")


def price_of(service: str, kind: str, params: dict, *, model_version: str, refine_model_version: str,
             prices: PriceTable) -> int:
    """Credits a task of ``kind`` with ``params`` (as the BFF records them) costs.

    ``refine_model_version`` is taken so that callers need not change when Tripo prices
    re-texture versions differently; today every version costs ``prices.refine``.
    """
    if service == OPENAI and kind == IMAGE_TO_IMAGE:
        return prices.openai_credits_per_image * int(params["n"])
    if service != TRIPO:
        raise ValueError(f"no price for {service} task kind {kind!r}")
    if kind == REFINE_MODEL:
        return prices.refine
    if kind == CONVERT_MODEL:
        return prices.convert
    family = "p1_" if model_version.startswith(P1_VERSION_PREFIX) else ""
    # Tripo textures by default, so a task recorded without the flag is a textured one.
    texture = "textured" if params.get("texture", True) else "untextured"
    return getattr(prices, f"{family}{_generation_route(kind, params)}_{texture}")


# Each route's request with its default options, as the BFF records it (see bff.schemas).
_DEFAULT_REQUESTS: dict[str, tuple[str, dict]] = {
    TEXT_TO_MODEL: (TRIPO, {"texture": True}),
    SKETCH_TO_MODEL: (TRIPO, {"texture": True}),
    IMAGE_TO_MODEL: (TRIPO, {"image_urls": ["front"], "texture": True}),
    REFINE_MODEL: (TRIPO, {}),
    CONVERT_MODEL: (TRIPO, {}),
    IMAGE_TO_IMAGE: (OPENAI, {"n": 1}),
}


def default_prices(*, model_version: str, refine_model_version: str, prices: PriceTable) -> dict[str, int]:
    """Credits per task kind with the route's default options, for a client to show
    "this costs N credits" before it asks."""
    return {
        kind: price_of(service, kind, params, model_version=model_version,
                       refine_model_version=refine_model_version, prices=prices)
        for kind, (service, params) in _DEFAULT_REQUESTS.items()
    }
