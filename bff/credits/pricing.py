"""What a task costs, in credits: the one place that prices a task.

A Tripo task is priced from the create call it sends (the path and body that
``bff.providers.tripo_requests`` builds): the endpoint, the model version, texture on or
off and its quality. An OpenAI edit costs ``BFF_OPENAI_CREDITS_PER_IMAGE`` per image asked.
"""

from __future__ import annotations

from bff.providers.tripo_requests import (
    CONVERT_MODEL_PATH,
    IMAGE_TO_MODEL_PATH,
    MULTIVIEW_TO_MODEL_PATH,
    TEXT_TO_MODEL_PATH,
    TEXTURE_MODEL_PATH,
    tripo_create_request,
)
from bff.settings import Settings
from bff.tasks.record import Service, Task

from .prices import TripoPrices

# Tripo's low-poly model family costs more; its versions start with this.
P1_VERSION_PREFIX = "P1-"

_GENERATIONS = {TEXT_TO_MODEL_PATH: "text", IMAGE_TO_MODEL_PATH: "image", MULTIVIEW_TO_MODEL_PATH: "multiview"}


def price_of(task: Task, settings: Settings) -> int:
    if task.service == Service.OPENAI:
        return settings.bff_openai_credits_per_image * int(task.params["n"])
    path, body = tripo_create_request(task, settings)
    return tripo_price(path, body, settings.bff_tripo_prices)


def tripo_price(path: str, body: dict, prices: TripoPrices) -> int:
    """The credits Tripo charges for the create call ``body`` to ``path``."""
    if path == TEXTURE_MODEL_PATH:
        return prices.refine
    if path == CONVERT_MODEL_PATH:
        return prices.convert
    family = "p1_" if body["model"].startswith(P1_VERSION_PREFIX) else ""
    textured = body.get("texture", True)  # Tripo textures unless told not to
    base = getattr(prices, f"{family}{_GENERATIONS[path]}_{'textured' if textured else 'untextured'}")
    surcharges = {"detailed": prices.detailed_texture, "extreme": prices.extreme_texture}
    quality = str(body.get("texture_quality", "standard"))
    return base + (surcharges.get(quality, 0) if textured else 0)
