"""End users signed in with the app's sign-in provider: the API against the sandbox issuer
served over real HTTP on loopback, with real RS256 and ES256 tokens. Every refused token,
the issuer's keys changing or going away, users sharing one address, app keys and App
Check on top, and what the OpenAPI spec declares."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest

from bff.identity import VerifiedToken, errors
from bff.identity.app_keys import ClientKeys
from bff.tasks.queue import SUBMIT_QUEUE
from bff.web import create_app
from sandbox.identity import SANDBOX_AUDIENCE, Signer, new_signer
from tests.helpers import queued, store_for
from tests.issuer import Issuer

HS256_SECRET = "a-legacy-supabase-jwt-secret-of-40-chars!"
IOS_KEY = "ios-key-0123456789abcdefghij"
ANDROID_KEY = "android-key-0123456789abcdef"
PROJECT_NUMBER = "123456789012"
TEXT_TASK = {"prompt": "a cup"}


def app_for(settings, issuer: Issuer, **changes):
    """The app with sign-in at the sandbox issuer (and any other setting changed)."""
    signed_in = {"bff_auth_issuer": issuer.url, "bff_auth_audience": SANDBOX_AUDIENCE}
    return create_app(dataclasses.replace(settings, **{**signed_in, **changes})).test_client()


@pytest.fixture
def api(settings, redis_client, issuer):
    return app_for(settings, issuer)


def bearer(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def user_client(issuer: Issuer, user: str) -> str:
    return "user:" + VerifiedToken(user, issuer.url, {}, 0).user_id


def text_task(api, token: str | None, **headers):
    return api.post("/generate/text-to-model", json=TEXT_TASK, headers=bearer(token, **headers) if token else headers)


def now() -> int:
    return int(time.time())


def assert_refused(response, reason: str, token: str = "") -> None:
    """A 401 in the API's error shape naming `reason`, with RFC 6750's challenge, and no
    part of the token anywhere in the answer."""
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == 401 and body["status"] == "Unauthorized"
    assert body["message"].startswith(f"Sign-in token refused: {reason}.")
    assert response.headers["WWW-Authenticate"] == f'Bearer error="invalid_token", error_description="{reason}"'
    answer = response.get_data(as_text=True) + str(response.headers)
    assert not [part for part in token.split(".") if len(part) >= 8 and part in answer]


# --- who the user is ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_good_token_makes_its_user_the_client(api, redis_client, issuer, alg):
    response = text_task(api, issuer.token(alg=alg))

    assert response.status_code == 202
    assert store_for(redis_client).get(response.get_json()["task_id"]).client == user_client(issuer, "alice")


def test_health_readiness_and_docs_need_no_token(api):
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"):
        assert api.get(path).status_code == 200, path
    assert api.get("/styles").status_code == 401


def test_the_same_sub_from_another_issuer_is_another_user():
    assert VerifiedToken("alice", "https://a.example", {}, 0).user_id != VerifiedToken(
        "alice", "https://b.example", {}, 0).user_id


# --- every refusal ----------------------------------------------------------------


def signed_by_a_stranger(issuer: Issuer, **claims) -> str:
    """Signed by a key nobody published, under the kid of the issuer's own key."""
    stranger = new_signer("RS256")
    return Signer(issuer.sandbox.signer("RS256").kid, "RS256", stranger.private_key).sign(issuer.claims(**claims))


def hs256_with_the_public_key(issuer: Issuer) -> str:
    """The "alg confusion" attack: HMAC keyed with the issuer's public key."""
    return issuer.sandbox.sign(issuer.claims(), alg="HS256", secret=issuer.sandbox.signer("RS256").public_pem())


REFUSALS = {
    "not-a-jwt": (lambda issuer: "not-a-jwt", errors.MALFORMED),
    "expired": (lambda issuer: issuer.token(iat=now() - 7200, exp=now() - 3600), errors.EXPIRED),
    "not-yet-valid": (lambda issuer: issuer.token(nbf=now() + 3600), errors.NOT_YET_VALID),
    "issued-in-the-future": (lambda issuer: issuer.token(iat=now() + 3600, exp=now() + 7200),
                             errors.ISSUED_IN_FUTURE),
    "wrong-signature": (signed_by_a_stranger, errors.BAD_SIGNATURE),
    "wrong-issuer": (lambda issuer: issuer.token(iss="https://evil.example/auth"), errors.WRONG_ISSUER),
    "wrong-audience": (lambda issuer: issuer.token(aud="another-app"), errors.WRONG_AUDIENCE),
    "no-sub": (lambda issuer: issuer.token(without=("sub",)), errors.missing_claim("sub")),
    "no-exp": (lambda issuer: issuer.token(without=("exp",)), errors.missing_claim("exp")),
    "unsigned": (lambda issuer: issuer.sandbox.sign(issuer.claims(), alg="none"), errors.ALGORITHM_NOT_ALLOWED),
    "hs256-public-key": (hs256_with_the_public_key, errors.ALGORITHM_NOT_ALLOWED),
    "unknown-kid": (lambda issuer: issuer.token(kid="made-up"), errors.UNKNOWN_KEY_ID),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_token_is_a_401_naming_the_failed_check(api, redis_client, issuer, case):
    make_token, reason = REFUSALS[case]
    token = make_token(issuer)

    response = text_task(api, token)

    assert_refused(response, reason, token)
    assert queued(redis_client, SUBMIT_QUEUE) == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Bearer "},
                                     {"Authorization": "Basic YWxpY2U6c2VjcmV0"}])
def test_no_bearer_token_is_a_401_that_says_what_to_send(api, headers):
    response = api.get("/tasks/some-id/status?service=tripo", headers=headers)

    assert_refused(response, errors.MISSING)
    assert "Send Authorization: Bearer <token>." in response.get_json()["message"]


def test_tokens_are_never_logged(api, issuer, caplog):
    caplog.set_level(logging.DEBUG)
    good, bad = issuer.token(), issuer.token(aud="another-app")

    assert text_task(api, good).status_code == 202
    assert text_task(api, bad).status_code == 401

    logged = " ".join(record.getMessage() + str(vars(record)) for record in caplog.records)
    assert "sign-in token refused" in logged and errors.WRONG_AUDIENCE in logged
    assert not [part for token in (good, bad) for part in token.split(".") if part in logged]


def test_hs256_is_accepted_only_with_the_legacy_secret(settings, redis_client, issuer):
    legacy = app_for(settings, issuer, bff_auth_hs256_secret=HS256_SECRET)

    good = issuer.sandbox.sign(issuer.claims(), alg="HS256", secret=HS256_SECRET)
    forged = issuer.sandbox.sign(issuer.claims(), alg="HS256", secret=HS256_SECRET.upper())

    assert text_task(legacy, good).status_code == 202
    assert_refused(text_task(legacy, forged), errors.BAD_SIGNATURE, forged)
    assert text_task(legacy, issuer.token()).status_code == 202  # the issuer's own keys still work


def test_an_authorized_party_setting_refuses_tokens_for_other_origins(settings, redis_client, issuer):
    clerk = app_for(settings, issuer, bff_auth_authorized_parties=("https://makeit3d.app",))

    assert text_task(clerk, issuer.token(azp="https://makeit3d.app")).status_code == 202
    assert_refused(text_task(clerk, issuer.token(azp="https://evil.example")), errors.WRONG_AUTHORIZED_PARTY)


# --- the issuer's keys ------------------------------------------------------------------


def test_a_rotated_key_works_at_once_and_the_retired_one_stops(api, issuer):
    retired = issuer.sandbox.signer("RS256")
    assert text_task(api, issuer.token()).status_code == 202

    issuer.sandbox.rotate("RS256")

    assert text_task(api, issuer.token(sub="bob")).status_code == 202
    assert_refused(text_task(api, retired.sign(issuer.claims(sub="carol"))), errors.UNKNOWN_KEY_ID)


def test_a_key_the_issuer_just_published_works_at_once(api, issuer):
    assert text_task(api, issuer.token()).status_code == 202

    extra = issuer.sandbox.publish_extra_key("ES256")

    assert text_task(api, extra.sign(issuer.claims(sub="bob"))).status_code == 202
    assert issuer.sandbox.jwks_fetches == 2


def test_a_flood_of_made_up_kids_costs_the_issuer_one_fetch(api, issuer):
    assert text_task(api, issuer.token()).status_code == 202

    for n in range(40):
        assert_refused(text_task(api, issuer.token(kid=f"made-up-{n}")), errors.UNKNOWN_KEY_ID)

    assert issuer.sandbox.jwks_fetches == 2  # the first fetch, and one refetch per 30 s at most
    assert issuer.sandbox.discovery_fetches == 1


def test_an_issuer_outage_leaves_the_cached_keys_working(api, issuer):
    assert text_task(api, issuer.token()).status_code == 202

    issuer.sandbox.go_down()

    assert text_task(api, issuer.token(sub="bob")).status_code == 202
    assert_refused(text_task(api, issuer.token(kid="made-up")), errors.UNKNOWN_KEY_ID)  # a 401, not a 503


def test_an_unreachable_issuer_with_no_cached_keys_is_a_503_with_retry_after(api, redis_client, issuer):
    issuer.sandbox.go_down(drop_connection=True)
    token = issuer.token()

    response = text_task(api, token)

    assert response.status_code == 503 and response.get_json()["code"] == 503
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert "WWW-Authenticate" not in response.headers
    assert token.split(".")[1] not in response.get_data(as_text=True)
    assert queued(redis_client, SUBMIT_QUEUE) == 0


# --- users sharing one address ---------------------------------------------------------


def test_two_users_on_one_address_have_their_own_limits(settings, redis_client, issuer):
    api = app_for(settings, issuer, bff_tripo_other_requests_per_minute=1)
    alice, bob = issuer.token(), issuer.token(sub="bob")

    assert text_task(api, alice).status_code == 202
    assert text_task(api, alice).status_code == 429
    assert text_task(api, bob).status_code == 202


def test_a_users_task_is_not_found_for_another_user(api, issuer):
    alice, bob = issuer.token(), issuer.token(sub="bob")
    task_id = text_task(api, alice).get_json()["task_id"]

    assert api.get(f"/tasks/{task_id}/status?service=tripo", headers=bearer(alice)).status_code == 200
    for path in (f"/tasks/{task_id}/status?service=tripo", f"/tasks/{task_id}/result", f"/tasks/{task_id}/preview",
                 f"/tasks/{task_id}/images/0"):
        assert api.get(path, headers=bearer(bob)).status_code == 404, path
    refine = {"draft_model_task_id": task_id}
    assert api.post("/generate/refine-model", json=refine, headers=bearer(bob)).status_code == 404
    assert api.post("/generate/refine-model", json=refine, headers=bearer(alice)).status_code == 409  # not done yet


def test_idempotency_keys_are_per_user(api, issuer):
    alice, bob = issuer.token(), issuer.token(sub="bob")
    key = {"Idempotency-Key": "0b0e6f4e-one-key-two-users"}

    first = text_task(api, alice, **key)
    retried = text_task(api, alice, **key)
    other_user = text_task(api, bob, **key)

    assert retried.get_json()["task_id"] == first.get_json()["task_id"]
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert other_user.status_code == 202 and "Idempotent-Replayed" not in other_user.headers
    assert other_user.get_json()["task_id"] != first.get_json()["task_id"]


# --- app keys and App Check on top ------------------------------------------------------------


def test_with_app_keys_as_well_the_client_is_the_app_and_the_user(settings, redis_client, issuer):
    api = app_for(settings, issuer, bff_api_keys=ClientKeys.parse(f"ios={IOS_KEY},android={ANDROID_KEY}"))
    alice = issuer.token()

    assert api.post("/generate/text-to-model", json=TEXT_TASK, headers=bearer(alice)).status_code == 401
    assert_refused(text_task(api, None, **{"X-API-Key": IOS_KEY}), errors.MISSING)
    accepted = text_task(api, alice, **{"X-API-Key": IOS_KEY})

    task_id = accepted.get_json()["task_id"]
    assert store_for(redis_client).get(task_id).client == f"key:ios/{user_client(issuer, 'alice')}"
    status = f"/tasks/{task_id}/status?service=tripo"
    assert api.get(status, headers=bearer(alice, **{"X-API-Key": ANDROID_KEY})).status_code == 404


def app_check_token(issuer: Issuer, **overrides) -> str:
    claims = {"iss": f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}",
              "aud": [f"projects/{PROJECT_NUMBER}"], "sub": "1:123456789012:ios:abc", "iat": now(),
              "exp": now() + 3600, **overrides}
    return issuer.sandbox.sign(claims, headers={"typ": "JWT"})


@pytest.fixture
def attested(settings, redis_client, issuer):
    """Sign-in and App Check, whose keys the sandbox issuer's JWKS stands in for."""
    return app_for(settings, issuer, bff_app_check_project_number=PROJECT_NUMBER,
                   bff_app_check_jwks_url=f"{issuer.url}/.well-known/jwks.json")


def test_app_check_is_required_on_generation_routes(attested, redis_client, issuer):
    alice = issuer.token()

    accepted = text_task(attested, alice, **{"X-Firebase-AppCheck": app_check_token(issuer)})
    missing = text_task(attested, alice)

    assert accepted.status_code == 202
    assert missing.status_code == 401 and "X-Firebase-AppCheck" in missing.get_json()["message"]
    status = f"/tasks/{accepted.get_json()['task_id']}/status?service=tripo"
    assert attested.get(status, headers=bearer(alice)).status_code == 200  # reads need no attestation


@pytest.mark.parametrize("overrides, reason", [
    ({"aud": ["projects/999999"]}, errors.WRONG_AUDIENCE),
    ({"iss": "https://firebaseappcheck.googleapis.com/999999"}, errors.WRONG_ISSUER),
    ({"exp": now() - 3600, "iat": now() - 7200}, errors.EXPIRED),
])
def test_a_bad_app_check_token_is_a_401(attested, redis_client, issuer, overrides, reason):
    response = text_task(attested, issuer.token(), **{"X-Firebase-AppCheck": app_check_token(issuer, **overrides)})

    assert response.status_code == 401
    assert response.get_json()["message"] == f"App Check token refused: {reason}."
    assert queued(redis_client, SUBMIT_QUEUE) == 0


# --- what the OpenAPI spec declares --------------------------------------------------------------


@pytest.mark.parametrize("changes, generation, reads", [
    ({"bff_auth_issuer": "", "bff_auth_audience": ""}, None, None),
    ({}, ["BearerAuth"], ["BearerAuth"]),
    ({"bff_api_keys": ClientKeys.parse(f"ios={IOS_KEY}")}, ["ApiKey", "BearerAuth"], ["ApiKey", "BearerAuth"]),
    ({"bff_app_check_project_number": PROJECT_NUMBER}, ["BearerAuth", "AppCheck"], ["BearerAuth"]),
], ids=["anonymous", "sign-in", "keys-and-sign-in", "app-check"])
def test_the_spec_declares_the_configured_credentials_per_route(settings, redis_client, issuer, changes,
                                                                 generation, reads):
    spec = app_for(settings, issuer, **changes).get("/openapi.json").get_json()

    def required(path: str, method: str = "get"):
        security = spec["paths"][path][method].get("security")
        return sorted(security[0]) if security else None

    assert sorted(spec["components"].get("securitySchemes", {})) == sorted(generation or [])
    assert required("/generate/text-to-model", "post") == (sorted(generation) if generation else None)
    assert required("/tasks/{task_id}/status") == (sorted(reads) if reads else None)
    assert required("/healthz") is None
    if generation:
        assert spec["components"]["securitySchemes"]["BearerAuth"]["bearerFormat"] == "JWT"


def test_the_sandbox_docs_say_how_to_get_a_token(settings, redis_client):
    sandbox = dataclasses.replace(settings, bff_sandbox=True, bff_auth_issuer="http://127.0.0.1:8765/auth",
                                  bff_auth_audience=SANDBOX_AUDIENCE)
    spec = create_app(sandbox).test_client().get("/openapi.json").get_json()

    how = "curl -s -X POST http://127.0.0.1:8765/auth/token"
    assert how in spec["info"]["description"]
    assert how in spec["components"]["securitySchemes"]["BearerAuth"]["description"]

