"""Who is calling: the client a request acts for, and the tasks it may see.

With ``BFF_API_KEYS`` set, a client is the name of the key in its ``X-API-Key`` header
(checked by ``bff.identity.app_keys``). Without keys, a client is the caller's address
(behind the platform's one proxy: see ProxyFix in ``bff.web.app``).
"""

from __future__ import annotations

from flask import g, request

from bff.identity.app_keys import ClientKeys

from .refusals import Unauthenticated

API_KEY_HEADER = "X-API-Key"
# Routes any caller may use: health checks and the docs; and /metrics, which checks its own token.
OPEN_ENDPOINTS = frozenset({
    "health.healthz", "health.readyz", "api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_ui_assets",
    "metrics.scrape",
})


def identify_client(keys: ClientKeys | None) -> None:
    """Set ``g.client`` for this request, or answer 401."""
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return
    if keys is None:
        g.client = f"address:{request.remote_addr}"
        return
    client = keys.client_for(request.headers.get(API_KEY_HEADER, ""))
    if client is None:
        raise Unauthenticated(f"Missing or unknown {API_KEY_HEADER} header.")
    g.client = f"key:{client}"


def current_client() -> str:
    return g.client
