"""What the BFF sends to OpenAI for an image-to-image task: the one edit call."""

from __future__ import annotations

from bff.settings import Settings
from bff.tasks.record import Service, Task, Upload
from bff.tasks.styles import styled_prompt

from .openai import ImageEdit


def openai_edit_request(task: Task, upload: Upload, settings: Settings) -> ImageEdit:
    params = task.params
    return ImageEdit(
        image=upload.data,
        filename=upload.filename,
        content_type=upload.content_type,
        prompt=styled_prompt(params["prompt"], params.get("style"), Service.OPENAI),
        model=settings.openai_image_model,
        n=params["n"],
        size=params["size"],
        background=params.get("background"),
    )
