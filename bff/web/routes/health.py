"""GET /healthz and /readyz, for the platform's health checks."""

from __future__ import annotations

from flask_smorest import Blueprint, abort

from bff.redis_client import REDIS_UNAVAILABLE_ERRORS
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
    """Readiness: Redis is reachable"""
    try:
        services().redis.ping()
    except REDIS_UNAVAILABLE_ERRORS:
        abort(503, message="Not ready: Redis is unreachable.", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return {"status": "ready", "redis": "ok", "sandbox": services().settings.bff_sandbox}
