"""The sandbox sign-in issuer served over real HTTP on loopback (one server per module,
its controller reset for each test), and a hand-moved monotonic clock that times a
verifier's key refreshes. Test modules and conftests import the fixtures from here."""

from __future__ import annotations

import pytest

from bff.identity import TokenVerifier
from sandbox.identity import SANDBOX_AUDIENCE, create_identity_app, standard_claims
from sandbox.server import serve_in_thread

COOLDOWN_SECONDS = 30.0
LIFESPAN_SECONDS = 3600.0


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Issuer:
    """The sandbox issuer as a test sees it: its URL, its controller, token minting and
    verifiers pointed at it."""

    def __init__(self, base_url: str, sandbox):
        self.url = base_url
        self.sandbox = sandbox
        self.clock = FakeClock()

    def claims(self, *, without: tuple[str, ...] = (), **overrides) -> dict:
        """Good claims for user "alice", valid for 10 minutes, changed as asked."""
        claims = {**standard_claims(self.url, "alice", expires_in=600), **overrides}
        return {name: value for name, value in claims.items() if name not in without}

    def token(self, *, alg: str = "RS256", kid: str | None = None, headers: dict | None = None,
              without: tuple[str, ...] = (), **overrides) -> str:
        return self.sandbox.sign(self.claims(without=without, **overrides), alg=alg, kid=kid,
                                 headers=headers)

    def verifier(self, **options) -> TokenVerifier:
        """A verifier of this issuer's tokens, its verified-token cache off unless asked."""
        options = {"verified_cache_size": 0, "clock": self.clock,
                   "refresh_cooldown_seconds": COOLDOWN_SECONDS,
                   "key_lifespan_seconds": LIFESPAN_SECONDS, **options}
        return TokenVerifier(self.url, SANDBOX_AUDIENCE, **options)


@pytest.fixture(scope="module")
def issuer_server():
    app = create_identity_app()
    server = serve_in_thread(app)
    yield server, app.extensions["identity_sandbox"]
    server.shutdown()


@pytest.fixture
def issuer(issuer_server) -> Issuer:
    server, sandbox = issuer_server
    sandbox.reset()
    return Issuer(server.base_url, sandbox)
