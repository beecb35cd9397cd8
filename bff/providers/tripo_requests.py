"""What the BFF sends to Tripo for each kind of task.

One builder per task kind turns the parameters recorded on the task into the create
call of providers.md: the path and the exact JSON body. Image endpoints take no prompt
at Tripo, so a recorded prompt or style is never sent for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bff.settings import Settings
from bff.tasks import conversions
from bff.tasks.record import Kind, Service, Task
from bff.tasks.styles import styled_prompt

# How a missing view travels in multiview `inputs`. providers.md: the official Python SDK
# sends null, the JS SDK "", older docs {}; this is the one place that choice is made.
MISSING_VIEW = None
MULTIVIEW_SLOTS = 4

# Refinement: Tripo retired refine_model; re-texturing the draft at a higher quality is
# the closest live capability.
REFINE_TEXTURE_QUALITY = "detailed"

# The create paths (what each kind is priced by: bff.credits.pricing).
TEXT_TO_MODEL_PATH = "/generation/text-to-model"
IMAGE_TO_MODEL_PATH = "/generation/image-to-model"
MULTIVIEW_TO_MODEL_PATH = "/generation/multiview-to-model"
TEXTURE_MODEL_PATH = "/models/texture"
CONVERT_MODEL_PATH = "/models/convert"


# Conversion (POST /models/convert). Whether Tripo accepts a lower-case format name is
# uncertain (providers.md); the official SDKs send upper case, and this is the one place
# that choice is made.
def convert_format_name(format_name: str) -> str:
    return format_name.upper()


# Tripo's own defaults for the options the BFF offers: no face limit, 4096 px textures.
# An option equal to Tripo's default is not sent.
TRIPO_CONVERT_DEFAULTS: dict[str, int | None] = {"face_limit": None, "texture_size": 4096}
# What a request may ask for. Tripo takes any positive face limit; the BFF caps it at
# 500,000 (providers.md), and a model of fewer than 1000 faces is of no use.
FACE_LIMIT_RANGE = (1000, 500_000)
TEXTURE_SIZE_RANGE = (256, 4096)


@dataclass(frozen=True)
class ConvertTarget:
    """What the BFF asks for when converting to one format, unless the request says otherwise."""

    textured: bool  # whether the format carries a texture, so texture options apply
    face_limit: int | None = None  # None: Tripo's default, the full geometry
    texture_size: int | None = None  # None: Tripo's default


# The one table of per-format defaults. AR Quick Look: Apple's guidance is about 100,000
# polygons and 2048 x 2048 textures. Printing (STL, 3MF): the full geometry, no texture.
# The others: Tripo's defaults.
CONVERT_TARGETS = {
    "usdz": ConvertTarget(textured=True, face_limit=100_000, texture_size=2048),
    "stl": ConvertTarget(textured=False),
    "3mf": ConvertTarget(textured=False),
    "obj": ConvertTarget(textured=True),
    "fbx": ConvertTarget(textured=True),
    "gltf": ConvertTarget(textured=True),
}


def conversion_options(format_name: str, *, face_limit: int | None, texture_size: int | None) -> dict:
    """The options a conversion runs with: the request's, else the format's defaults, else
    Tripo's; ``texture_size`` is None for a format without texture."""
    target = CONVERT_TARGETS[format_name]
    textures = texture_size or target.texture_size or TRIPO_CONVERT_DEFAULTS["texture_size"]
    return {"face_limit": face_limit or target.face_limit, "texture_size": textures if target.textured else None}


def _texture_flags(texture: bool) -> dict:
    # Tripo defaults both to true and pbr forces texture on, so "no texture" needs both off.
    return {"texture": True} if texture else {"texture": False, "pbr": False}


def _text_to_model(params: dict, settings: Settings) -> tuple[str, dict]:
    return TEXT_TO_MODEL_PATH, {
        "prompt": styled_prompt(params["prompt"], params.get("style"), Service.TRIPO),
        "model": settings.tripo_model_version,
        **_texture_flags(params["texture"]),
    }


def _single_image(url: str, texture: bool, settings: Settings) -> tuple[str, dict]:
    return IMAGE_TO_MODEL_PATH, {
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
    return MULTIVIEW_TO_MODEL_PATH, {
        "inputs": [MISSING_VIEW if view is None else view for view in views],
        "model": settings.tripo_model_version,
        **_texture_flags(params["texture"]),
    }


def _refine_model(params: dict, settings: Settings) -> tuple[str, dict]:
    return TEXTURE_MODEL_PATH, {
        "input": params["draft_provider_task_id"],
        "model": settings.tripo_refine_model_version,
        "texture": True,
        "pbr": True,
        "texture_quality": REFINE_TEXTURE_QUALITY,
    }


def _convert_model(params: dict, settings: Settings) -> tuple[str, dict]:
    """No ``model`` field: a conversion has no model version."""
    changed = {name: params[name] for name, tripo_default in TRIPO_CONVERT_DEFAULTS.items()
               if params[name] not in (None, tripo_default)}
    return CONVERT_MODEL_PATH, {
        "input": params[conversions.SOURCE_PROVIDER_TASK],
        "format": convert_format_name(params["format"]),
        **changed,
    }


_BUILDERS: dict[str, Callable[[dict, Settings], tuple[str, dict]]] = {
    Kind.TEXT_TO_MODEL: _text_to_model,
    Kind.SKETCH_TO_MODEL: _sketch_to_model,
    Kind.IMAGE_TO_MODEL: _image_to_model,
    Kind.REFINE_MODEL: _refine_model,
    Kind.CONVERT_MODEL: _convert_model,
}


def tripo_create_request(task: Task, settings: Settings) -> tuple[str, dict]:
    return _BUILDERS[task.kind](task.params, settings)
