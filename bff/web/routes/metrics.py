"""GET /metrics: the Prometheus scrape, for operators (what is counted: ``bff.metrics``).

The route exists only when ``BFF_METRICS_TOKEN`` is set (else 404) and answers only a
caller that sends that token as ``Authorization: Bearer <token>``. It is not part of the
app's API: a plain Flask blueprint, so it stays out of the OpenAPI document, and like
``/healthz`` it needs no client key and counts against no client limit.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from bff.metrics import ScrapeGauges
from bff.tasks.capacity import all_buckets
from bff.web.refusals import Unauthenticated
from bff.web.services import services

blp = Blueprint("metrics", __name__)


@blp.route("/metrics")
def scrape() -> Response:
    app_services = services()
    _require_bearer_token(app_services.settings.bff_metrics_token)
    credits = app_services.credits
    gauges = ScrapeGauges(tasks=app_services.store.capacity_counts(all_buckets(app_services.settings)),
                          credits_budget=credits.service_budget,
                          credits_spent_today=credits.spent_today() if credits.enabled else None)
    body, content_type = app_services.metrics.render(gauges)
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


def _require_bearer_token(token: str) -> None:
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time: the answer's timing must not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise Unauthenticated("Missing or wrong bearer token.")
