"""A local OIDC issuer: the sign-in provider of sandbox mode and of the identity tests.

It publishes a discovery document and a JWKS like Supabase, Firebase, Auth0 or Clerk do,
and mints tokens on request (`POST /token` with `{"user": "alice"}`), signed RS256 with a
key made at start. Its issuer is the URL it is served under, so mounted at `/auth` of
the sandbox on 127.0.0.1:8765 it is `http://127.0.0.1:8765/auth`. An IdentitySandbox
controller, found at `app.extensions["identity_sandbox"]`, lets tests rotate keys, publish
extra ones, take the key endpoints down, count JWKS fetches, and sign arbitrary (also
bad) tokens with RS256, ES256, HS256 or none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sandbox import faults

SANDBOX_AUDIENCE = "makeit3d-sandbox"
DEFAULT_EXPIRES_IN = 3600
MAX_EXPIRES_IN = 24 * 3600
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
_KEY_PATHS = (DISCOVERY_PATH, JWKS_PATH)


@dataclass(frozen=True)
class Signer:
    """One signing key: its kid, algorithm and private key."""

    kid: str
    alg: str
    private_key: Any

    def sign(self, claims: dict, headers: dict | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm=self.alg,
                          headers={"kid": self.kid, **(headers or {})})

    def public_jwk(self) -> dict:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def new_signer(alg: str = "RS256") -> Signer:
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"the sandbox issuer makes RS256 and ES256 keys, not {alg}")
    return Signer(kid=secrets.token_hex(8), alg=alg, private_key=key)


def standard_claims(issuer: str, user: str, expires_in: float = DEFAULT_EXPIRES_IN,
                    now: float | None = None, audience: str = SANDBOX_AUDIENCE) -> dict:
    """The claims a real issuer puts in a sign-in token."""
    issued_at = int(time.time() if now is None else now)
    return {"iss": issuer, "aud": audience, "sub": user, "iat": issued_at,
            "exp": issued_at + int(expires_in)}


class IdentitySandbox:
    """Keys, outage switch and counters of one issuer; every method is thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._lock = threading.Lock()
        # The current key of each algorithm, always published.
        self._current = {"RS256": new_signer("RS256"), "ES256": new_signer("ES256")}
        self.reset()

    def reset(self) -> None:
        """Zero the counters, come back up, unpublish extra keys (current keys stay)."""
        with self._lock:
            self._extra: list[Signer] = []
            self._jwks_fetches = 0
            self._discovery_fetches = 0
            self._down: str | None = None

    # --- observing -------------------------------------------------------------

    @property
    def jwks_fetches(self) -> int:
        """Requests received at the JWKS endpoint, answered or not."""
        with self._lock:
            return self._jwks_fetches

    @property
    def discovery_fetches(self) -> int:
        """Requests received at the discovery endpoint, answered or not."""
        with self._lock:
            return self._discovery_fetches

    def signer(self, alg: str = "RS256") -> Signer:
        """The current key of `alg`."""
        with self._lock:
            return self._current[alg]

    def published(self) -> list[Signer]:
        with self._lock:
            return [*self._current.values(), *self._extra]

    # --- keys --------------------------------------------------------------------

    def rotate(self, alg: str = "RS256") -> Signer:
        """Replace the current key of `alg`: the new one is published, the old one is not."""
        signer = new_signer(alg)
        with self._lock:
            self._current[alg] = signer
        return signer

    def publish_extra_key(self, alg: str = "RS256") -> Signer:
        """Publish one more key, next to the current ones, from now on."""
        signer = new_signer(alg)
        with self._lock:
            self._extra.append(signer)
        return signer

    def sign(self, claims: dict, *, kid: str | None = None, alg: str = "RS256",
             headers: dict | None = None, secret: str | bytes | None = None) -> str:
        """A token with exactly these claims. RS256/ES256: signed with the published key
        named by `kid` or, for a kid nobody publishes, with the current key under that
        made-up kid. HS256: signed with `secret` (any bytes, even a public key's PEM,
        which PyJWT itself refuses). "none": unsigned."""
        if alg == "none":
            return _compact({"alg": "none", "typ": "JWT", **(headers or {})}, claims, b"")
        if alg == "HS256":
            header = {"alg": "HS256", "typ": "JWT", **(headers or {})}
            key = secret.encode() if isinstance(secret, str) else secret
            return _compact(header, claims, lambda data: hmac.new(key, data, hashlib.sha256).digest())
        signer = self._signer_for(kid, alg)
        return signer.sign(claims, {"kid": kid or signer.kid, **(headers or {})})

    def _signer_for(self, kid: str | None, alg: str) -> Signer:
        for signer in self.published():
            if signer.kid == kid:
                return signer
        return self.signer(alg)

    # --- misbehaving -----------------------------------------------------------

    def go_down(self, drop_connection: bool = False) -> None:
        """Discovery and JWKS answer 503 from now on, or with `drop_connection` close the
        connection with no answer."""
        with self._lock:
            self._down = "drop" if drop_connection else "503"

    def come_back(self) -> None:
        with self._lock:
            self._down = None

    # --- used by the routes ------------------------------------------------------

    def key_request(self, path: str) -> str | None:
        """Count a request to a key endpoint; how it must fail, or None."""
        with self._lock:
            if path == JWKS_PATH:
                self._jwks_fetches += 1
            else:
                self._discovery_fetches += 1
            return self._down


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict, claims: dict, signature: bytes | Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if callable(signature):
        signature = signature(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def create_identity_app(clock: Callable[[], float] = time.time) -> Flask:
    """The issuer as a Flask app; its issuer URL is the root it is served under."""
    app = Flask(__name__)
    sandbox = IdentitySandbox(clock)
    app.extensions["identity_sandbox"] = sandbox

    @app.before_request
    def outage() -> ResponseReturnValue | None:
        if request.path not in _KEY_PATHS:
            return None
        failure = sandbox.key_request(request.path)
        if failure == "drop":
            return faults.drop_connection()
        if failure == "503":
            return jsonify(error="temporarily unavailable"), 503
        return None

    @app.get(DISCOVERY_PATH)
    def discovery() -> ResponseReturnValue:
        issuer = _issuer()
        return jsonify(issuer=issuer, jwks_uri=issuer + JWKS_PATH, token_endpoint=issuer + "/token",
                       id_token_signing_alg_values_supported=["RS256", "ES256"])

    @app.get(JWKS_PATH)
    def jwks() -> ResponseReturnValue:
        return jsonify(keys=[signer.public_jwk() for signer in sandbox.published()])

    @app.post("/token")
    def token() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        problem = _token_request_problem(body)
        if problem:
            return jsonify(error=problem), 400
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
        claims = {**standard_claims(_issuer(), body["user"], expires_in, sandbox.clock()),
                  **body.get("claims", {})}
        return jsonify(access_token=sandbox.sign(claims), token_type="Bearer",
                       expires_in=expires_in)

    return app


def _issuer() -> str:
    # request.root_url includes the prefix a dispatcher mounted the app under.
    return request.root_url.rstrip("/")


def _token_request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "send a JSON object: {\"user\": \"alice\"}"
    if not isinstance(body.get("user"), str) or not body["user"]:
        return "user must be a non-empty string"
    if not isinstance(body.get("claims", {}), dict):
        return "claims must be an object"
    expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or not 0 < expires_in <= MAX_EXPIRES_IN:
        return f"expires_in must be whole seconds, 1..{MAX_EXPIRES_IN}"
    return None
