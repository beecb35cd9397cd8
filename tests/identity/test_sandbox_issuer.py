"""The sandbox issuer as sandbox mode runs it: mounted at /auth of the stand-ins' server,
minting tokens over HTTP that the BFF's verifier accepts."""

import pytest
import requests

from bff.identity import TokenVerifier, claim_at
from sandbox.app import create_sandbox_app
from sandbox.identity import SANDBOX_AUDIENCE
from sandbox.server import serve_in_thread


@pytest.fixture(scope="module")
def sandbox_url():
    server = serve_in_thread(create_sandbox_app(tripo_api_key="tsk_x", openai_latency_seconds=0))
    yield server.base_url
    server.shutdown()


def mint(sandbox_url: str, body) -> requests.Response:
    return requests.post(f"{sandbox_url}/auth/token", json=body, timeout=5)


def test_the_issuer_is_the_url_it_is_mounted_under(sandbox_url):
    document = requests.get(f"{sandbox_url}/auth/.well-known/openid-configuration", timeout=5).json()

    assert document["issuer"] == f"{sandbox_url}/auth"
    assert requests.get(document["jwks_uri"], timeout=5).json()["keys"]


def test_a_minted_token_passes_the_bffs_verifier(sandbox_url):
    answer = mint(sandbox_url, {"user": "alice", "claims": {"app_metadata": {"plan": "pro"}},
                                "expires_in": 120}).json()

    verified = TokenVerifier(f"{sandbox_url}/auth", SANDBOX_AUDIENCE).verify(answer["access_token"])

    assert (answer["token_type"], answer["expires_in"]) == ("Bearer", 120)
    assert verified.subject == "alice"
    assert verified.expires_at - verified.claims["iat"] == 120
    assert claim_at(verified.claims, "app_metadata.plan") == "pro"


@pytest.mark.parametrize("body", [None, {}, {"user": ""}, {"user": "a", "claims": []},
                                  {"user": "a", "expires_in": 0}, {"user": "a", "expires_in": "60"}])
def test_a_bad_token_request_is_answered_400(sandbox_url, body):
    response = mint(sandbox_url, body)

    assert response.status_code == 400 and response.json()["error"]
