"""Who is calling: the client a request acts for, and the tasks it may see.

The client is what limits, task ownership and idempotency keys are counted by:

- with ``BFF_AUTH_ISSUER``, the signed-in user (the token's ``sub``, scoped by issuer);
- with ``BFF_API_KEYS``, the app named by the key in ``X-API-Key``;
- with both, the pair (app, user); with neither, the caller's address (behind the
  platform's one proxy: see ProxyFix in ``bff.web.app``).

With ``BFF_APP_CHECK_PROJECT_NUMBER`` the generation routes also need a Firebase App
Check token. The checks themselves are ``bff.identity``'s; this module reads the headers,
turns a refusal into ``bff.web.refusals`` and says in the OpenAPI spec what each route needs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apispec import BasePlugin
from flask import g, request

from bff.identity import (
    IdentityUnavailable,
    InvalidToken,
    TokenVerifier,
    app_check_verifier,
    require_authorized_party,
)
from bff.identity.app_keys import ClientKeys
from bff.identity.errors import MISSING
from bff.settings import Settings

from .refusals import TokenRefused, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
APP_CHECK_HEADER = "X-Firebase-AppCheck"
# Routes any caller may use: health checks and the docs; and /metrics, which checks its own token.
OPEN_ENDPOINTS = frozenset({
    "health.healthz", "health.readyz", "api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_ui_assets",
    "metrics.scrape",
})
# The routes that spend provider credit: the ones App Check guards.
_GENERATION_BLUEPRINT = "generate."
# Names of the OpenAPI security schemes (Swagger UI's Authorize dialog shows them).
API_KEY_SCHEME, BEARER_SCHEME, APP_CHECK_SCHEME = "ApiKey", "BearerAuth", "AppCheck"


@dataclass(frozen=True)
class Identity:
    """The credentials this deployment asks for; each None when not configured."""

    keys: ClientKeys | None
    users: TokenVerifier | None
    app_check: TokenVerifier | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        """Fetches nothing: the issuers' keys are read when the first token needs them
        (so this is safe before gunicorn forks)."""
        users = None
        if settings.bff_auth_issuer:
            parties = settings.bff_auth_authorized_parties
            users = TokenVerifier(
                settings.bff_auth_issuer, settings.bff_auth_audience, jwks_url=settings.bff_auth_jwks_url or None,
                algorithms=settings.bff_auth_algorithms, leeway_seconds=settings.bff_auth_leeway_seconds,
                hs256_secret=settings.bff_auth_hs256_secret or None,
                extra_checks=[require_authorized_party(parties)] if parties else None)
        app_check = None
        if settings.bff_app_check_project_number:
            app_check = app_check_verifier(settings.bff_app_check_project_number,
                                           jwks_url=settings.bff_app_check_jwks_url)
        return cls(settings.bff_api_keys, users, app_check)

    def schemes_for(self, endpoint: str) -> list[str]:
        """The credentials a route needs, by OpenAPI scheme name (none for open routes)."""
        if endpoint in OPEN_ENDPOINTS:
            return []
        needed = [API_KEY_SCHEME] if self.keys else []
        needed += [BEARER_SCHEME] if self.users else []
        if self.app_check and endpoint.startswith(_GENERATION_BLUEPRINT):
            needed.append(APP_CHECK_SCHEME)
        return needed


def identify_client(identity: Identity) -> None:
    """Set ``g.client`` (and ``g.claims``: the verified sign-in token's claims, or None)
    for this request, or refuse it (401, or 503 when the issuer's keys cannot be had)."""
    g.claims = None
    endpoint = request.endpoint
    if endpoint is None or endpoint in OPEN_ENDPOINTS:
        return
    g.client, g.claims = client_of(identity, endpoint, request.headers.get, request.remote_addr)


# Reads a request header: (name, default) -> value.
HeaderReader = Callable[[str, str], str | None]


def client_of(identity: Identity, endpoint: str, header: HeaderReader,
              address: str | None) -> tuple[str, Mapping[str, Any] | None]:
    """The client a request to ``endpoint`` acts for, and the claims of its verified
    sign-in token (None without sign-in); raises a refusal. Reads nothing but ``header``
    and the caller's ``address``, so the fast paths (``bff.web.fast_paths``) ask it too."""
    parts, claims = [], None
    if identity.keys is not None:
        parts.append(f"key:{_app_named_by_key(identity.keys, header(API_KEY_HEADER, '') or '')}")
    if identity.users is not None:
        claims, user_id = _signed_in_user(identity.users, header("Authorization", "") or "")
        parts.append(f"user:{user_id}")
    if identity.app_check is not None and endpoint.startswith(_GENERATION_BLUEPRINT):
        _check_app_attestation(identity.app_check, (header(APP_CHECK_HEADER, "") or "").strip())
    return "/".join(parts) or f"address:{address}", claims


def _app_named_by_key(keys: ClientKeys, presented: str) -> str:
    app = keys.client_for(presented)
    if app is None:
        raise Unauthenticated(f"Missing or unknown {API_KEY_HEADER} header.")
    return app


def _signed_in_user(users: TokenVerifier, authorization: str) -> tuple[Mapping[str, Any], str]:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        token = ""  # no Bearer credentials at all: the verifier names it "missing token"
    try:
        verified = users.verify(token.strip())
    except InvalidToken as refused:
        log.info("sign-in token refused", extra={"reason": refused.reason})
        hint = " Send Authorization: Bearer <token>." if refused.reason == MISSING else ""
        raise TokenRefused(f"Sign-in token refused: {refused.reason}.{hint}", reason=refused.reason) from None
    except IdentityUnavailable as unavailable:
        raise Unavailable("The sign-in provider's keys cannot be fetched right now; retry shortly.",
                          retry_after=math.ceil(unavailable.retry_after_seconds)) from None
    return verified.claims, verified.user_id


def _check_app_attestation(app_check: TokenVerifier, token: str) -> None:
    if not token:
        raise Unauthenticated(f"Missing {APP_CHECK_HEADER} header: send the app's Firebase App Check token.")
    try:
        app_check.verify(token)
    except InvalidToken as refused:
        log.info("app check token refused", extra={"reason": refused.reason})
        raise Unauthenticated(f"App Check token refused: {refused.reason}.") from None
    except IdentityUnavailable as unavailable:
        raise Unavailable("Firebase App Check's keys cannot be fetched right now; retry shortly.",
                          retry_after=math.ceil(unavailable.retry_after_seconds)) from None


class SecurityDocs(BasePlugin):
    """An apispec plugin that declares the configured security schemes and, on each
    operation, the ones its route needs (from ``Identity.schemes_for``, the same rule the
    requests are checked by), so Swagger UI's Authorize button sends the right headers."""

    def __init__(self, identity: Identity, bearer_description: str):
        self._identity = identity
        self._bearer_description = bearer_description

    def init_spec(self, spec) -> None:
        components = spec.components
        if self._identity.keys:
            components.security_scheme(API_KEY_SCHEME, {"type": "apiKey", "in": "header", "name": API_KEY_HEADER})
        if self._identity.users:
            components.security_scheme(BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                                       "description": self._bearer_description})
        if self._identity.app_check:
            components.security_scheme(APP_CHECK_SCHEME, {
                "type": "apiKey", "in": "header", "name": APP_CHECK_HEADER,
                "description": "Firebase App Check token (generation routes only)."})

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        needed = self._identity.schemes_for(rule.endpoint)
        for operation in operations.values():
            operation["security"] = [{scheme: [] for scheme in needed}] if needed else []


def sign_in_help(settings: Settings) -> str:
    """How a caller gets a sign-in token, for the API description and the Authorize dialog."""
    if settings.uses_sandbox_issuer:
        return ("Sign in at the sandbox's local issuer: get a token for any test user with "
                f"`curl -s -X POST {settings.bff_auth_issuer}/token -H 'Content-Type: application/json' "
                "-d '{\"user\": \"alice\"}'`, then press **Authorize** and paste its `access_token`.")
    return (f"The app user's sign-in token (a JWT issued by `{settings.bff_auth_issuer}` for audience "
            f"`{settings.bff_auth_audience}`), sent as `Authorization: Bearer <token>`.")
