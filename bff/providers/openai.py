"""HTTP client for OpenAI image edits (see shared/providers.md, "OpenAI image edits").

An edit returns its images in the POST response; there is nothing to read back later.
Every failure leaves here as a classified ``ProviderError``, and every call is reported to
the client's observer (``bff.providers.calls``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

import requests

from bff.tasks.record import Service

from .calls import EDIT, CallObserver, observed, unobserved
from .errors import classify_openai_response, classify_transport_error, parse_retry_after, unreadable_answer

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
# Edits take 20..60 s and up to about two minutes; providers.md asks for at least 180 s.
READ_TIMEOUT_SECONDS = 180


@dataclass(frozen=True)
class ImageEdit:
    image: bytes
    filename: str
    content_type: str
    prompt: str
    model: str
    n: int
    size: str
    background: str | None = None


class OpenAIClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        observe: CallObserver = unobserved,
    ):
        self._observe = observe
        self._url = f"{base_url.rstrip('/')}/images/edits"
        self._session = requests.Session()
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeouts = timeouts

    def edit_image(self, edit: ImageEdit) -> tuple[list[bytes], str | None]:
        """The edited images, in order, and OpenAI's request id."""
        with observed(self._observe, Service.OPENAI, EDIT):
            return self._edit(edit)

    def _edit(self, edit: ImageEdit) -> tuple[list[bytes], str | None]:
        try:
            response = self._session.post(
                self._url,
                headers=self._headers,
                data=_form_fields(edit),
                files={"image": (edit.filename, edit.image, edit.content_type)},
                timeout=self._timeouts,
            )
        except requests.RequestException as error:
            raise classify_transport_error(error, creates=True) from None
        request_id = response.headers.get("x-request-id")
        body = _json_or_none(response)
        if not response.ok:
            failure = classify_openai_response(response.status_code, body, request_id=request_id,
                                               retry_after=parse_retry_after(response.headers))
            log.warning("openai edit failed", extra={"http_status": response.status_code, "outcome": failure.outcome,
                                                     "provider_code": failure.provider_code,
                                                     "provider_request_id": request_id})
            raise failure
        images = _decoded_images(body)
        if not images:
            raise unreadable_answer(creates=True, request_id=request_id)
        return images, request_id


def _form_fields(edit: ImageEdit) -> dict[str, str]:
    # Never response_format: GPT Image models reject it and always answer base64.
    fields = {"prompt": edit.prompt, "model": edit.model, "n": str(edit.n), "size": edit.size}
    if edit.background:
        fields["background"] = edit.background
    return fields


def _decoded_images(body) -> list[bytes]:
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return []
    try:
        return [base64.b64decode(item["b64_json"], validate=True) for item in items]
    except (KeyError, TypeError, binascii.Error):
        return []


def _json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None
