"""What the BFF sends to Tripo for each kind of generation task.

One builder per task kind turns the parameters recorded on the task into the create
call of providers.md: the path and the exact JSON body.
"""

from __future__ import annotations

from typing import Callable

from .settings import Settings
from .styles import TRIPO, styled_prompt
from .task import Task

TEXT_TO_MODEL = "text_to_model"


def _texture_flags(texture: bool) -> dict:
    # Tripo defaults both to true and pbr forces texture on, so "no texture" needs both off.
    return {"texture": True} if texture else {"texture": False, "pbr": False}


def _text_to_model(params: dict, settings: Settings) -> tuple[str, dict]:
    body = {
        "prompt": styled_prompt(params["prompt"], params.get("style"), TRIPO),
        "model": settings.tripo_model_version,
        **_texture_flags(params["texture"]),
    }
    return "/generation/text-to-model", body


_BUILDERS: dict[str, Callable[[dict, Settings], tuple[str, dict]]] = {
    TEXT_TO_MODEL: _text_to_model,
}


def tripo_create_request(task: Task, settings: Settings) -> tuple[str, dict]:
    return _BUILDERS[task.kind](task.params, settings)
