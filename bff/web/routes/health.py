"""GET /healthz and /readyz, for the platform's health checks."""

from __future__ import annotations

from flask_smorest import Blueprint, abort
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
from bff.results.object_store import ObjectStore, StorageUnavailable
from bff.web.errors import RETRY_AFTER_SECONDS
from bff.web.schemas import HealthResponse, ReadinessResponse
from bff.web.services import services

from .docs import error_responses

blp = Blueprint("health", __name__, description="Liveness and readiness.")


@blp.route("/healthz")
@blp.doc(security=[])
@blp.response(200, HealthResponse)
def healthz():
    """Liveness: the process is up"""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.doc(security=[])
@blp.response(200, ReadinessResponse)
@error_responses(blp, 503)
def readyz():
    """Readiness: Redis takes writes (and how the result storage is)

    A write, not a ping: a full Redis (maxmemory) or a replica during failover answers
    pings but refuses every task."""
    app_services = services()
    try:
        app_services.redis.set(_PROBE_KEY, "1", px=_PROBE_MILLISECONDS)
    except REDIS_UNAVAILABLE_ERRORS as error:
        why = _WHY.get(type(error).__name__, "is unreachable")
        abort(503, message=f"Not ready: Redis {why}.", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return {"status": "ready", "redis": "ok", "storage": _storage_state(app_services.objects),
            "sandbox": app_services.settings.bff_sandbox}


_PROBE_KEY = "bff:readyz"
_PROBE_MILLISECONDS = 5000
_WHY = {OutOfMemoryError.__name__: "is full (maxmemory)",
        ReadOnlyError.__name__: "is read-only (a replica, or failing over)"}


def _storage_state(objects: ObjectStore | None) -> str:
    """Reported, not required: with the storage down the service still takes and follows tasks."""
    if objects is None:
        return "not configured"
    try:
        objects.ping()
    except StorageUnavailable:
        return "unreachable"
    return "ok"
