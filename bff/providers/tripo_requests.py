"""What the BFF sends to Tripo for each kind of generation task.

One builder per task kind turns the parameters recorded on the task into the create
call of providers.md: the path and the exact JSON body. Image endpoints take no prompt
at Tripo, so a recorded prompt or style is never sent for them.
"""

from __future__ import annotations

from collections.abc import Callable

from bff.settings import Settings
from bff.tasks.record import Kind, Service, Task
from bff.tasks.styles import styled_prompt

# How a missing view travels in multiview `inputs`. providers.md: the official Python SDK
# sends null, the JS SDK "", older docs {}; this is the one place that choice is made.
MISSING_VIEW = None
MULTIVIEW_SLOTS = 4

# Refinement: Tripo retired refine_model; re-texturing the draft at a higher quality is
# the closest live capability.
REFINE_TEXTURE_QUALITY = "detailed"


def _texture_flags(texture: bool) -> dict:
    # Tripo defaults both to true and pbr forces texture on, so "no texture" needs both off.
    return {"texture": True} if texture else {"texture": False, "pbr": False}


def _text_to_model(params: dict, settings: Settings) -> tuple[str, dict]:
    return "/generation/text-to-model", {
        "prompt": styled_prompt(params["prompt"], params.get("style"), Service.TRIPO),
        "model": settings.tripo_model_version,
        **_texture_flags(params["texture"]),
    }


def _single_image(url: str, texture: bool, settings: Settings) -> tuple[str, dict]:
    return "/generation/image-to-model", {
        "input": url,
        "model": settings.tripo_model_version,
        **_texture_flags(texture),
    }


def _sketch_to_model(params: dict, settings: Settings) -> tuple[str, dict]:
    return _single_image(params["image_url"], params["texture"], settings)


def _image_to_model(params: dict, settings: Settings) -> tuple[str, dict]:
    views = list(params["image_urls"]) + [None] * (MULTIVIEW_SLOTS - len(params["image_urls"]))
    if sum(view is not None for view in views) == 1:
        return _single_image(views[0], params["texture"], settings)
    return "/generation/multiview-to-model", {
        "inputs": [MISSING_VIEW if view is None else view for view in views],
        "model": settings.tripo_model_version,
        **_texture_flags(params["texture"]),
    }


def _refine_model(params: dict, settings: Settings) -> tuple[str, dict]:
    return "/models/texture", {
        "input": params["draft_provider_task_id"],
        "model": settings.tripo_refine_model_version,
        "texture": True,
        "pbr": True,
        "texture_quality": REFINE_TEXTURE_QUALITY,
    }


_BUILDERS: dict[str, Callable[[dict, Settings], tuple[str, dict]]] = {
    Kind.TEXT_TO_MODEL: _text_to_model,
    Kind.SKETCH_TO_MODEL: _sketch_to_model,
    Kind.IMAGE_TO_MODEL: _image_to_model,
    Kind.REFINE_MODEL: _refine_model,
}


def tripo_create_request(task: Task, settings: Settings) -> tuple[str, dict]:
    return _BUILDERS[task.kind](task.params, settings)
