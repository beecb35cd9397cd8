"""The issuer's published signing keys: found by OIDC discovery, fetched over HTTPS,
cached, and kept when the issuer is down.

PyJWKClient is not used: it drops its key set once the set's lifespan has passed even when
the issuer cannot be reached, and its unknown-kid cooldown also starts at the first fetch,
so a key published just after start would wait out the cooldown. The rules here:

- nothing is fetched before the first token needs a key (safe to build before a fork);
- a token with an unknown kid refetches the set, at most once per cooldown, so a flood
  of made-up kids costs the issuer one request per cooldown;
- a set older than its lifespan is refetched; when that fails the last good set stays in
  use, however old;
- after a failed fetch nothing is tried again before the cooldown has passed, so an
  outage does not make every request wait for the fetch timeout.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from jwt import PyJWK, PyJWTError

from .errors import IdentityUnavailable

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
# The algorithms a published key may serve. HMAC ("oct") keys never come from a JWKS:
# a shared secret published to the world would sign anything.
ASYMMETRIC_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
})


def require_safe_url(url: str, setting: str) -> None:
    """Refuse a key URL an attacker on the network could answer (see is_safe_key_url).
    Raises ValueError naming `setting`."""
    if not is_safe_key_url(url):
        parts = urlsplit(url)
        raise ValueError(f"{setting} must be an https URL (plain http only for a loopback host), "
                         f"got {parts.scheme or 'no scheme'}://{parts.hostname or ''}")


def is_safe_key_url(url: str) -> bool:
    """https only; plain http only for a loopback host (the sandbox, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and _is_loopback(parts.hostname)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IssuerKeys:
    """An issuer's public keys by kid. Thread-safe; fetches lazily."""

    def __init__(self, *, issuer: str, jwks_url: str | None, fetch_timeout_seconds: float,
                 refresh_cooldown_seconds: float, key_lifespan_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self._issuer = issuer
        self._discovery_url = issuer.rstrip("/") + DISCOVERY_PATH
        require_safe_url(jwks_url or self._discovery_url, "jwks_url" if jwks_url else "issuer")
        self._jwks_url = jwks_url
        self._timeout = fetch_timeout_seconds
        self._cooldown = refresh_cooldown_seconds
        self._lifespan = key_lifespan_seconds
        self._clock = clock
        self._fetch_lock = threading.Lock()
        # Replaced whole, never changed in place: readers take it without the lock.
        self._keys: dict[str, PyJWK] | None = None
        self._fetched_at = -math.inf
        self._quiet_until = -math.inf

    def key(self, kid: str) -> PyJWK | None:
        """The published key with this kid, or None when the issuer does not publish it.
        Raises IdentityUnavailable when no key set could be fetched yet."""
        keys, just_fetched = self._current_keys()
        if kid in keys or just_fetched:
            return keys.get(kid)
        return self._refetch_for_unknown_kid(kid, keys).get(kid)

    def _current_keys(self) -> tuple[dict[str, PyJWK], bool]:
        """The key set to use, and whether it was fetched just now."""
        keys = self._keys
        if keys is None:
            return self._first_keys(), True
        if self._is_stale() and self._fetch_lock.acquire(blocking=False):
            # Non-blocking: while one thread renews, the others keep using the old set.
            try:
                if self._is_stale() and self._may_fetch():
                    fetched = self._try_fetch()
                    return fetched or keys, fetched is not None
            finally:
                self._fetch_lock.release()
        return keys, False

    def _first_keys(self) -> dict[str, PyJWK]:
        with self._fetch_lock:
            if self._keys is not None:  # another thread fetched them meanwhile
                return self._keys
            fetched = self._try_fetch() if self._may_fetch() else None
            if fetched is None:
                raise IdentityUnavailable(max(self._quiet_until - self._clock(), 1.0))
            return fetched

    def _refetch_for_unknown_kid(self, kid: str, known: dict[str, PyJWK]) -> dict[str, PyJWK]:
        with self._fetch_lock:
            latest = self._keys or known  # another thread may have fetched meanwhile
            if kid in latest or not self._may_fetch():
                return latest
            fetched = self._try_fetch()
            self._quiet_until = self._clock() + self._cooldown
            return fetched or latest

    def _is_stale(self) -> bool:
        return self._clock() - self._fetched_at >= self._lifespan

    def _may_fetch(self) -> bool:
        return self._clock() >= self._quiet_until

    def _try_fetch(self) -> dict[str, PyJWK] | None:
        """Fetch the key set (the caller holds the fetch lock); on failure keep the old
        one, stay quiet for a cooldown, say so in the log and return None."""
        try:
            keys = _usable_keys(self._get_json(self._jwks_location()))
        except (requests.RequestException, ValueError) as error:
            self._quiet_until = self._clock() + self._cooldown
            log.warning("could not fetch the identity issuer's keys",
                        extra={"issuer": self._issuer, "error": f"{type(error).__name__}: {error}",
                               "cached_keys": self._keys is not None})
            return None
        self._keys, self._fetched_at = keys, self._clock()
        return keys

    def _jwks_location(self) -> str:
        if self._jwks_url is None:
            document = self._get_json(self._discovery_url)
            if document.get("issuer") != self._issuer:
                raise ValueError(f"the discovery document names issuer {document.get('issuer')!r}")
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("the discovery document has no jwks_uri")
            require_safe_url(jwks_uri, "the discovery document's jwks_uri")
            self._jwks_url = jwks_uri  # an issuer's key URL does not move: discover once
        return self._jwks_url

    def _get_json(self, url: str) -> dict[str, Any]:
        # No redirects: they could lead off https.
        response = requests.get(url, timeout=self._timeout, allow_redirects=False,
                                headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"{url} answered HTTP {response.status_code}")
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return document


def _usable_keys(jwks: dict[str, Any]) -> dict[str, PyJWK]:
    """The signing keys of a JWKS document by kid; raises ValueError when none is usable
    (an empty set must not replace the last good one)."""
    entries = jwks.get("keys")
    keys = {}
    for entry in entries if isinstance(entries, list) else ():
        if not (isinstance(entry, dict) and isinstance(entry.get("kid"), str)
                and entry.get("use", "sig") == "sig"):
            continue
        try:
            key = PyJWK(entry)
        except PyJWTError:
            continue  # a key type this library cannot use: other keys still can
        if key.algorithm_name in ASYMMETRIC_ALGORITHMS:
            keys[entry["kid"]] = key
    if not keys:
        raise ValueError("the JWKS holds no usable signing key")
    return keys
