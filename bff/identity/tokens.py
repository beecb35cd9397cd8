"""Verifying the app's sign-in tokens (OIDC JWTs from Supabase, Firebase, Auth0, Clerk)
and Firebase App Check tokens, with PyJWT.

Strict by design: the signature is checked against the issuer's published keys (or, for
the legacy HS256 case only, the configured secret); the algorithm comes from a fixed
allow-list; iss, aud, exp, iat and sub must be present and right. The key is chosen by
the algorithm family the token's header names, so a token cannot get a public key used
as an HMAC secret (the "alg confusion" attack).
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt

from . import errors
from .errors import InvalidToken
from .keys import ASYMMETRIC_ALGORITHMS, IssuerKeys

REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub")
HS256 = "HS256"
# RFC 7518 3.2: an HS256 key must be at least as long as the hash, 256 bits.
MIN_HS256_SECRET_BYTES = 32
DEFAULT_CACHE_ENTRIES = 10_000

APP_CHECK_JWKS_URL = "https://firebaseappcheck.googleapis.com/v1/jwks"
APP_CHECK_ISSUER_PREFIX = "https://firebaseappcheck.googleapis.com/"
# Google serves the App Check JWKS with a 6-hour cache lifetime.
APP_CHECK_KEY_LIFESPAN_SECONDS = 6 * 3600

# A check beyond the standard ones: gets the token's header and claims, raises InvalidToken.
Check = Callable[[Mapping[str, Any], Mapping[str, Any]], None]

# PyJWT's errors, most specific first, and the reason each one means.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, errors.EXPIRED),
    (jwt.InvalidIssuerError, errors.WRONG_ISSUER),
    (jwt.InvalidAudienceError, errors.WRONG_AUDIENCE),
    (jwt.InvalidAlgorithmError, errors.ALGORITHM_NOT_ALLOWED),
    (jwt.InvalidSignatureError, errors.BAD_SIGNATURE),
)


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed every check. `claims` is read-only: one instance is shared by
    every request that presents the same token (the verified-token cache)."""

    subject: str
    issuer: str
    claims: Mapping[str, Any]
    expires_at: float

    @functools.cached_property  # asked on every request that presents the (cached) token
    def user_id(self) -> str:
        """A stable id for the end user: `sub` is unique only within its issuer, so the
        issuer is part of it. Hashed, so it has a fixed length and alphabet (safe as a Redis
        key part and in logs) and does not expose the provider's own user id."""
        digest = hashlib.sha256(f"{self.issuer}#{self.subject}".encode()).hexdigest()
        return f"u_{digest[:32]}"


class VerifiedTokenCache:
    """Tokens already verified, by sha256 of the token, each until its exp; least recently
    used dropped first. Repeated requests with one token skip the signature check."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time):
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    def get(self, token: str) -> VerifiedToken | None:
        key = _digest(token)
        with self._lock:
            verified = self._entries.get(key)
            if verified is None:
                return None
            if self._clock() >= verified.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return verified

    def put(self, token: str, verified: VerifiedToken) -> None:
        if self._clock() >= verified.expires_at:
            return  # accepted within the leeway only: never served from the cache past exp
        key = _digest(token)
        with self._lock:
            self._entries[key] = verified
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenVerifier:
    """Verifies one issuer's tokens for one audience. Thread-safe; nothing is fetched
    until the first token needs a key, so it is safe to build before gunicorn forks.

    `jwks_url` defaults to the `jwks_uri` of `{issuer}/.well-known/openid-configuration`.
    `hs256_secret` additionally accepts HS256 tokens (legacy Supabase projects), verified
    with that secret only. `extra_checks` run after the standard ones. `verified_cache_size`
    0 turns the verified-token cache off; `clock` (monotonic) times key refreshes.
    """

    def __init__(self, issuer: str, audience: str, *, jwks_url: str | None = None,
                 algorithms: tuple[str, ...] = ("RS256", "ES256"), leeway_seconds: float = 60,
                 hs256_secret: str | None = None, fetch_timeout_seconds: float = 4,
                 refresh_cooldown_seconds: float = 30, key_lifespan_seconds: float = 3600,
                 extra_checks: Iterable[Check] | None = None,
                 verified_cache_size: int = DEFAULT_CACHE_ENTRIES,
                 clock: Callable[[], float] = time.monotonic):
        if not issuer or not audience:
            raise ValueError("issuer and audience must both be set")
        self.issuer, self.audience = issuer, audience
        self._algorithms = _allowed_algorithms(algorithms, hs256_secret)
        self._hs256_secret = hs256_secret
        self._leeway = leeway_seconds
        self._extra_checks = tuple(extra_checks or ())
        self._keys = IssuerKeys(issuer=issuer, jwks_url=jwks_url,
                                fetch_timeout_seconds=fetch_timeout_seconds,
                                refresh_cooldown_seconds=refresh_cooldown_seconds,
                                key_lifespan_seconds=key_lifespan_seconds, clock=clock)
        self._cache = VerifiedTokenCache(verified_cache_size) if verified_cache_size > 0 else None

    def verify(self, token: str) -> VerifiedToken:
        """The verified token; raises InvalidToken (answer 401) or IdentityUnavailable (503)."""
        if not token:
            raise InvalidToken(errors.MISSING)
        verified = self._cache.get(token) if self._cache is not None else None
        if verified is None:
            verified = self._verify_signed(token)
            if self._cache is not None:
                self._cache.put(token, verified)
        return verified

    def _verify_signed(self, token: str) -> VerifiedToken:
        header = _header(token)
        algorithm = self._allowed_algorithm(header)
        key = self._key_for(algorithm, header)
        try:
            claims = jwt.decode(token, key=key, algorithms=[algorithm], audience=self.audience,
                                issuer=self.issuer, leeway=self._leeway,
                                options={"require": list(REQUIRED_CLAIMS)})
        except jwt.PyJWTError as error:
            # `from None`: no chained PyJWT error, so no traceback can carry token parts.
            raise InvalidToken(_reason(error)) from None
        if not claims["sub"]:
            raise InvalidToken(errors.missing_claim("sub"))
        for check in self._extra_checks:
            check(header, claims)
        return VerifiedToken(subject=claims["sub"], issuer=claims["iss"],
                             claims=MappingProxyType(claims), expires_at=float(claims["exp"]))

    def _allowed_algorithm(self, header: Mapping[str, Any]) -> str:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise InvalidToken(errors.ALGORITHM_NOT_ALLOWED)
        return algorithm

    def _key_for(self, algorithm: str, header: Mapping[str, Any]) -> Any:
        """The key to check the signature with, chosen by the header's algorithm family:
        the HMAC secret for HS256 only, a published key for the asymmetric ones."""
        if algorithm == HS256:
            return self._hs256_secret
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken(errors.MISSING_KEY_ID)
        key = self._keys.key(kid)
        if key is None:
            raise InvalidToken(errors.UNKNOWN_KEY_ID)
        if key.algorithm_name != algorithm:
            raise InvalidToken(errors.ALGORITHM_KEY_MISMATCH)
        return key


def _allowed_algorithms(algorithms: tuple[str, ...], hs256_secret: str | None) -> frozenset[str]:
    unknown = set(algorithms) - ASYMMETRIC_ALGORITHMS
    if unknown or not algorithms:
        raise ValueError(f"algorithms: only {sorted(ASYMMETRIC_ALGORITHMS)} may be listed, got "
                         f"{sorted(unknown) or 'none'} (HS256 is enabled by setting hs256_secret)")
    if hs256_secret is None:
        return frozenset(algorithms)
    if len(hs256_secret.encode()) < MIN_HS256_SECRET_BYTES:
        raise ValueError(f"hs256_secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
    return frozenset(algorithms) | {HS256}


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken(errors.MALFORMED) from None


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return errors.missing_claim(error.claim)
    if isinstance(error, jwt.ImmatureSignatureError):
        # PyJWT raises this one error for both; only its message tells which claim.
        return errors.ISSUED_IN_FUTURE if "(iat)" in str(error) else errors.NOT_YET_VALID
    for error_type, reason in _REASONS:
        if isinstance(error, error_type):
            return reason
    return errors.MALFORMED  # claims of the wrong type, bad encoding


def require_header_type(expected: str) -> Check:
    """A check that the header's `typ` is `expected` (App Check tokens say "JWT")."""
    def check(header: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
        if header.get("typ") != expected:
            raise InvalidToken(errors.WRONG_TYPE)
    return check


def require_authorized_party(allowed: Iterable[str]) -> Check:
    """Clerk's advice: when a token carries `azp` (the origin that asked for it), it must
    be one of ours. Tokens without `azp` (native apps) pass."""
    allowed = frozenset(allowed)

    def check(header: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
        if "azp" in claims and claims["azp"] not in allowed:
            raise InvalidToken(errors.WRONG_AUTHORIZED_PARTY)
    return check


def app_check_verifier(project_number: str, jwks_url: str = APP_CHECK_JWKS_URL,
                       **options: Any) -> TokenVerifier:
    """A verifier of Firebase App Check tokens (header X-Firebase-AppCheck) for one
    Firebase project, by its project NUMBER. Their `sub` is the app id; `aud` is a list
    that must contain `projects/<number>`. `options` go to TokenVerifier (tests: clock)."""
    if not project_number.isdigit():
        raise ValueError("project_number must be the Firebase project number (digits), not its id")
    return TokenVerifier(
        issuer=APP_CHECK_ISSUER_PREFIX + project_number, audience=f"projects/{project_number}",
        jwks_url=jwks_url, algorithms=("RS256",),
        key_lifespan_seconds=APP_CHECK_KEY_LIFESPAN_SECONDS,
        extra_checks=(require_header_type("JWT"),), **options)


def claim_at(claims: Mapping[str, Any], dotted_path: str) -> Any:
    """The value at `dotted_path` ("app_metadata.plan"), or None. A claim name may itself
    hold dots, as Auth0's namespaced ones do ("https://makeit3d.app/plan"): the longest
    name that exists wins at each level."""
    if not isinstance(claims, Mapping):
        return None
    parts = dotted_path.split(".")
    for split in range(len(parts), 0, -1):
        name = ".".join(parts[:split])
        if name in claims:
            if split == len(parts):
                return claims[name]
            value = claim_at(claims[name], ".".join(parts[split:]))
            if value is not None:
                return value
    return None
