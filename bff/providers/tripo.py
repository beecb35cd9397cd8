"""HTTP client for Tripo apiv3 (see shared/providers.md, "Tripo apiv3").

It speaks the wire format and nothing else: building request bodies from a task's
parameters lives in ``bff.providers.tripo_requests``, and what a status means lives in
``bff.providers.tripo_status``. Every failure leaves here as a classified ``ProviderError``,
and every call is reported to the client's observer (``bff.providers.calls``).
"""

from __future__ import annotations

import logging

import requests

from bff.tasks.record import Service

from .calls import CREATE, READ, READ_BATCH, CallObserver, observed, unobserved
from .errors import (
    classify_transport_error,
    classify_tripo_response,
    parse_retry_after,
    unreadable_answer,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30
BATCH_READ_LIMIT = 100  # POST /tasks/list takes at most 100 ids


class TripoClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        observe: CallObserver = unobserved,
    ):
        self._base_url = base_url.rstrip("/")
        self._observe = observe
        self._session = requests.Session()
        self._timeouts = timeouts
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def create_task(self, path: str, body: dict) -> str:
        """POST a create call (e.g. ``/generation/text-to-model``); returns Tripo's task id."""
        with observed(self._observe, Service.TRIPO, CREATE):
            data, request_id = self._call("POST", path, body, creates=True)
            task_id = data.get("task_id") if isinstance(data, dict) else None
            if not isinstance(task_id, str) or not task_id:
                raise unreadable_answer(creates=True, request_id=request_id)
        return task_id

    def get_task(self, task_id: str) -> dict:
        with observed(self._observe, Service.TRIPO, READ):
            data, request_id = self._call("GET", f"/tasks/{task_id}", None, creates=False)
            if not isinstance(data, dict):
                raise unreadable_answer(creates=False, request_id=request_id)
        return data

    def get_tasks(self, task_ids: list[str]) -> tuple[dict[str, dict], list[str]]:
        """Batch read of at most ``BATCH_READ_LIMIT`` tasks: (tasks by id, ids Tripo missed)."""
        if not 0 < len(task_ids) <= BATCH_READ_LIMIT:
            raise ValueError(f"between 1 and {BATCH_READ_LIMIT} task ids per call")
        with observed(self._observe, Service.TRIPO, READ_BATCH):
            data, request_id = self._call("POST", "/tasks/list", {"task_ids": task_ids}, creates=False)
            tasks = data.get("tasks") if isinstance(data, dict) else None
            if not isinstance(data, dict) or not isinstance(tasks, dict):
                raise unreadable_answer(creates=False, request_id=request_id)
        missed = data.get("missed") or []
        return tasks, [task_id for task_id in missed if isinstance(task_id, str)]

    def _call(self, method: str, path: str, body: dict | None, *, creates: bool) -> tuple[object, str | None]:
        """The envelope's ``data`` and the provider's request id, or a classified error."""
        try:
            response = self._session.request(
                method,
                f"{self._base_url}{path}",
                json=body,
                headers=self._headers,
                timeout=self._timeouts,
            )
        except requests.RequestException as error:
            raise classify_transport_error(error, creates=creates) from None
        envelope = _json_or_none(response)
        request_id = _request_id(response, envelope)
        if response.ok and isinstance(envelope, dict) and envelope.get("code") == 0:
            return envelope.get("data"), request_id
        if response.ok and not isinstance(envelope, dict):
            raise unreadable_answer(creates=creates, request_id=request_id)
        failure = classify_tripo_response(
            response.status_code,
            envelope if isinstance(envelope, dict) else None,
            creates=creates,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers),
        )
        log.warning(
            "tripo call failed",
            extra={"provider_path": path, "http_status": response.status_code,
                   "provider_code": failure.provider_code, "provider_request_id": request_id,
                   "outcome": failure.outcome},
        )
        raise failure


def _json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def _request_id(response: requests.Response, envelope) -> str | None:
    from_body = envelope.get("request_id") if isinstance(envelope, dict) else None
    return response.headers.get("X-Tripo-Trace-ID") or from_body
