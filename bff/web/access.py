"""What every answered request leaves behind: one ``bff.access`` log line and its HTTP
metrics (counted in this process, sent to Redis in the background: ``bff.metrics``)."""

from __future__ import annotations

import logging
import time

from bff.metrics import Metrics

access_log = logging.getLogger("bff.access")


def record_request(metrics: Metrics, endpoint: str | None, method: str, path: str, status: int,
                   started: float) -> None:
    """``started`` is the request's ``time.monotonic()`` at arrival; ``endpoint`` its
    route's name (None when no route matched). The path only: query strings are the
    client's business, not the log's; metrics count by endpoint, never by path (paths
    carry task ids)."""
    seconds = time.monotonic() - started
    access_log.info("request", extra={"method": method, "path": path, "status": status,
                                      "duration_ms": round(seconds * 1000, 1)})
    metrics.http_request(endpoint, method, status, seconds)
