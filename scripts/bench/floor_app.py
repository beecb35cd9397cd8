"""The floor the web role is measured against (``scripts/benchmark.py``): a bare Flask app
that does the least a status read or a submission can do on Redis, and nothing else (no
logging, no identity, no limits, no validation).

- ``GET /tasks/<id>/status``: one GET, the stored body as it is;
- ``POST /generate/text-to-model``: the JSON body read, one SET of a record, one RPUSH of
  its id.

Run under gunicorn with the web role's own settings (worker class, processes,
connections): ``REDIS_URL=... gunicorn scripts.bench.floor_app:app``.
"""

from __future__ import annotations

import json
import os
import secrets

import redis
from flask import Flask, Response, request

TASK_PREFIX = "floor:task:"
QUEUE = "floor:queue"

app = Flask(__name__)
# Connects on first use: importing this module (for TASK_PREFIX) needs no Redis.
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.get("/tasks/<task_id>/status")
def status(task_id: str) -> Response:
    body = _redis.get(TASK_PREFIX + task_id)
    if body is None:
        return Response('{"code": 404}', status=404, mimetype="application/json")
    return Response(body, mimetype="application/json")


@app.post("/generate/text-to-model")
def submit() -> tuple[dict, int]:
    task_id = secrets.token_urlsafe(18)
    _redis.set(TASK_PREFIX + task_id, json.dumps({"task_id": task_id, "params": request.get_json()}))
    _redis.rpush(QUEUE, task_id)
    return {"task_id": task_id, "status": "pending"}, 202
