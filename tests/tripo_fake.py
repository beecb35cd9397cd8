"""Tripo apiv3 at the HTTP boundary, for requests-mock: the wire format of providers.md.

Tasks are plain dicts in Tripo's task shape; a test moves them along with ``set_task``.
Output URLs look signed and carry an expiry, like Tripo's.
"""

from __future__ import annotations

import json
import re
import time
import uuid

CREATE_PATHS = ("/generation/text-to-model", "/generation/image-to-model", "/generation/multiview-to-model",
                "/models/texture", "/models/convert")


class FakeTripo:
    def __init__(self, mocker, base_url: str, api_key: str):
        self.base_url = base_url
        self.api_key = api_key
        self.tasks: dict[str, dict] = {}
        self.model_files: dict[str, str] = {}  # the file name a finished task's model_url ends with
        self._mocker = mocker
        for path in CREATE_PATHS:
            mocker.post(f"{base_url}{path}", json=self._create)
        mocker.post(f"{base_url}/tasks/list", json=self._list)
        mocker.get(re.compile(re.escape(f"{base_url}/tasks/") + r"[^/]+$"), json=self._get)

    # --- what the BFF sent -------------------------------------------------------
    def calls(self, path: str) -> list:
        return [r for r in self._mocker.request_history if r.url.split("?")[0] == f"{self.base_url}{path}"]

    def create_bodies(self, path: str = "/generation/text-to-model") -> list[dict]:
        return [json.loads(r.body) for r in self.calls(path)]

    def list_calls(self) -> list[list[str]]:
        return [json.loads(r.body)["task_ids"] for r in self.calls("/tasks/list")]

    # --- moving tasks along ------------------------------------------------------
    def set_task(self, task_id: str, status: str, progress: int = 0, **fields) -> None:
        self.tasks[task_id].update(status=status, progress=progress, **fields)

    def succeed(self, task_id: str, model_file: str = "model.glb", **output) -> None:
        self.model_files[task_id] = model_file
        self.set_task(task_id, "success", 100, output=output or self.signed_output(task_id),
                      completed_at="2026-11-24T10:05:00Z", credits_consumed=20.0)

    def signed_output(self, task_id: str) -> dict:
        expires = int(time.time()) + 300
        stamp = uuid.uuid4().hex[:12]
        model_file = self.model_files.get(task_id, "model.glb")
        return {
            "model_url": f"https://tripo-data.test/{task_id}/{model_file}?Expires={expires}&Signature={stamp}",
            "rendered_image_url": f"https://tripo-data.test/{task_id}/preview.png?Expires={expires}&Signature={stamp}",
        }

    # --- the wire ----------------------------------------------------------------
    def _authorised(self, request, context) -> dict | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        context.status_code = 401
        return {"code": 1002, "message": "invalid api key", "suggestion": "check your key", "request_id": "r-auth"}

    def _create(self, request, context):
        refused = self._authorised(request, context)
        if refused:
            return refused
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = {"task_id": task_id, "type": "text_to_model", "status": "queued", "progress": 0,
                               "output": {}, "created_at": "2026-11-24T10:00:00Z"}
        return {"code": 0, "data": {"task_id": task_id}}

    def _list(self, request, context):
        refused = self._authorised(request, context)
        if refused:
            return refused
        ids = request.json()["task_ids"]
        found = {task_id: self._read(task_id) for task_id in ids if task_id in self.tasks}
        return {"code": 0, "data": {"tasks": found, "missed": [i for i in ids if i not in self.tasks]}}

    def _get(self, request, context):
        refused = self._authorised(request, context)
        if refused:
            return refused
        task_id = request.path.rsplit("/", 1)[-1]
        if task_id not in self.tasks:
            context.status_code = 404
            return {"code": 2001, "message": "task not found", "request_id": "r-missing"}
        return {"code": 0, "data": self._read(task_id)}

    def _read(self, task_id: str) -> dict:
        task = dict(self.tasks[task_id])
        if task["status"] == "success" and "model_url" in task["output"]:
            task["output"] = self.signed_output(task_id)  # every read signs the URLs anew
        return task
