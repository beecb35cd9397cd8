"""What the BFF sends to OpenAI for an image-to-image task: the one edit call."""

from __future__ import annotations

from .providers.openai import ImageEdit
from .settings import Settings
from .styles import OPENAI, styled_prompt
from .task import Task, Upload

IMAGE_TO_IMAGE = "image_to_image"


def openai_edit_request(task: Task, upload: Upload, settings: Settings) -> ImageEdit:
    params = task.params
    return ImageEdit(
        image=upload.data,
        filename=upload.filename,
        content_type=upload.content_type,
        prompt=styled_prompt(params["prompt"], params.get("style"), OPENAI),
        model=settings.openai_image_model,
        n=params["n"],
        size=params["size"],
        background=params.get("background"),
    )
