"""Verifying sign-in tokens against the sandbox issuer over real HTTP: what passes, every
reason a token is refused, the key cache (rotation, floods of made-up kids, outages), the
legacy HS256 secret, App Check, and the verified-token cache."""

from __future__ import annotations

import socket
import threading
import time
import traceback

import jwt
import pytest

from bff.identity import (
    IdentityUnavailable,
    InvalidToken,
    TokenVerifier,
    VerifiedToken,
    app_check_verifier,
    claim_at,
    errors,
    require_authorized_party,
)
from bff.identity.tokens import REQUIRED_CLAIMS, VerifiedTokenCache
from sandbox.identity import Signer, new_signer
from tests.conftest import wait_until
from tests.issuer import COOLDOWN_SECONDS, LIFESPAN_SECONDS, FakeClock

SECRET = "a-legacy-supabase-jwt-secret-of-40-chars!"


def now() -> int:
    return int(time.time())


def refused(verifier: TokenVerifier, token: str) -> str:
    """The reason `token` is refused; fails if any part of the token is in the error."""
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert_token_not_revealed(caught.value, token)
    return caught.value.reason


def assert_token_not_revealed(error: Exception, token: str) -> None:
    text = "".join(traceback.format_exception(error)) + repr(error)
    for segment in token.split("."):
        if len(segment) >= 8:
            assert segment not in text


# --- tokens that pass ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_good_token_verifies_and_names_its_user(issuer, alg):
    claims = issuer.claims(app_metadata={"plan": "pro"})

    verified = issuer.verifier().verify(issuer.sandbox.sign(claims, alg=alg))

    assert (verified.subject, verified.issuer) == ("alice", issuer.url)
    assert verified.expires_at == claims["exp"]
    assert claim_at(verified.claims, "app_metadata.plan") == "pro"


def test_user_id_is_stable_and_scoped_by_issuer():
    def user_id(issuer: str, subject: str) -> str:
        return VerifiedToken(subject, issuer, {}, 0.0).user_id

    assert user_id("https://a.example", "alice") == user_id("https://a.example", "alice")
    assert user_id("https://a.example", "alice") != user_id("https://b.example", "alice")
    assert user_id("https://a.example", "alice") != user_id("https://a.example", "bob")
    assert "alice" not in user_id("https://a.example", "alice")


def test_clock_drift_within_the_leeway_is_accepted(issuer):
    verifier = issuer.verifier(leeway_seconds=60)

    assert verifier.verify(issuer.token(exp=now() - 30, iat=now() - 600)).subject == "alice"
    assert verifier.verify(issuer.token(iat=now() + 30, nbf=now() + 30)).subject == "alice"


def test_keys_are_fetched_on_first_need_and_discovered_once(issuer):
    verifier = issuer.verifier()
    assert (issuer.sandbox.discovery_fetches, issuer.sandbox.jwks_fetches) == (0, 0)

    verifier.verify(issuer.token())
    verifier.verify(issuer.token(sub="bob"))
    issuer.clock.advance(LIFESPAN_SECONDS)  # the set is renewed; its URL is not looked up again
    verifier.verify(issuer.token(sub="carol"))

    assert (issuer.sandbox.discovery_fetches, issuer.sandbox.jwks_fetches) == (1, 2)


def test_threads_verifying_at_once_fetch_the_keys_once(issuer):
    verifier = issuer.verifier()
    tokens = [issuer.token(sub=f"user{n}") for n in range(16)]
    start = threading.Barrier(len(tokens))
    subjects = []

    def verify(token: str) -> None:
        start.wait()
        subjects.append(verifier.verify(token).subject)

    threads = [threading.Thread(target=verify, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(subjects) == sorted(f"user{n}" for n in range(16))
    assert issuer.sandbox.jwks_fetches == 1


# --- every reason a token is refused --------------------------------------------


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"])
def test_missing_or_malformed_tokens_are_refused(issuer, token):
    assert refused(issuer.verifier(), token) in (errors.MISSING, errors.MALFORMED)


@pytest.mark.parametrize("claims, reason", [
    ({"exp": now() - 120}, errors.EXPIRED),
    ({"nbf": now() + 300}, errors.NOT_YET_VALID),
    ({"iat": now() + 300}, errors.ISSUED_IN_FUTURE),
    ({"iss": "https://someone-else.example"}, errors.WRONG_ISSUER),
    ({"aud": "another-app"}, errors.WRONG_AUDIENCE),
    ({"aud": ["another-app", "a-third-app"]}, errors.WRONG_AUDIENCE),
    ({"sub": ""}, errors.missing_claim("sub")),
    ({"exp": "tomorrow"}, errors.MALFORMED),
], ids=["expired", "nbf", "iat", "iss", "aud", "aud-list", "empty-sub", "exp-type"])
def test_bad_claims_are_refused_with_their_reason(issuer, claims, reason):
    assert refused(issuer.verifier(leeway_seconds=60), issuer.token(**claims)) == reason


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_every_required_claim_must_be_present(issuer, claim):
    assert refused(issuer.verifier(), issuer.token(without=(claim,))) == errors.missing_claim(claim)


def test_an_unsigned_token_is_refused(issuer):
    assert refused(issuer.verifier(), issuer.token(alg="none")) == errors.ALGORITHM_NOT_ALLOWED


def test_an_algorithm_off_the_allow_list_is_refused(issuer):
    verifier = issuer.verifier(algorithms=("ES256",))

    assert refused(verifier, issuer.token(alg="RS256")) == errors.ALGORITHM_NOT_ALLOWED
    assert verifier.verify(issuer.token(alg="ES256")).subject == "alice"


def test_a_header_alg_that_is_not_a_string_is_refused(issuer):
    token = issuer.token(headers={"alg": ["RS256"]}, alg="none")

    assert refused(issuer.verifier(), token) == errors.ALGORITHM_NOT_ALLOWED


def test_hs256_signed_with_the_public_key_is_refused(issuer):
    """The alg-confusion attack: the public key, which anyone can fetch, used as an HMAC
    secret. Refused without a secret configured and with one."""
    rsa_key = issuer.sandbox.signer("RS256")
    forged = issuer.sandbox.sign(issuer.claims(), alg="HS256", secret=rsa_key.public_pem(),
                                 headers={"kid": rsa_key.kid})

    assert refused(issuer.verifier(), forged) == errors.ALGORITHM_NOT_ALLOWED
    assert refused(issuer.verifier(hs256_secret=SECRET), forged) == errors.BAD_SIGNATURE


def test_a_token_signed_by_another_key_under_a_published_kid_is_refused(issuer):
    published = issuer.sandbox.signer("RS256")
    impostor = Signer(kid=published.kid, alg="RS256", private_key=new_signer("RS256").private_key)

    assert refused(issuer.verifier(), impostor.sign(issuer.claims())) == errors.BAD_SIGNATURE


def test_a_changed_payload_breaks_the_signature(issuer):
    header, _, signature = issuer.token().split(".")
    _, other_payload, _ = issuer.token(sub="mallory").split(".")

    assert refused(issuer.verifier(), f"{header}.{other_payload}.{signature}") == errors.BAD_SIGNATURE


def test_a_header_alg_that_does_not_match_the_key_is_refused(issuer):
    token = issuer.sandbox.signer("ES256").sign(issuer.claims(),
                                                {"kid": issuer.sandbox.signer("RS256").kid})

    assert refused(issuer.verifier(), token) == errors.ALGORITHM_KEY_MISMATCH


def test_kid_missing_or_unknown_is_refused(issuer):
    verifier = issuer.verifier()
    kidless = jwt.encode(issuer.claims(), issuer.sandbox.signer("RS256").private_key, algorithm="RS256")

    assert refused(verifier, issuer.token(kid="made-up")) == errors.UNKNOWN_KEY_ID
    assert refused(verifier, kidless) == errors.MISSING_KEY_ID


# --- keys: rotation, floods of made-up kids, outages ----------------------------------


def test_a_rotated_key_works_at_once_and_the_old_one_stops(issuer):
    verifier = issuer.verifier()
    old_token = issuer.token()
    verifier.verify(old_token)

    issuer.sandbox.rotate("RS256")

    assert verifier.verify(issuer.token()).subject == "alice"
    assert refused(verifier, old_token) == errors.UNKNOWN_KEY_ID
    assert issuer.sandbox.jwks_fetches == 2


def test_an_extra_published_key_works_at_once(issuer):
    verifier = issuer.verifier()
    verifier.verify(issuer.token())

    extra = issuer.sandbox.publish_extra_key("ES256")

    assert verifier.verify(extra.sign(issuer.claims(sub="bob"))).subject == "bob"


def test_a_flood_of_made_up_kids_refetches_once_per_cooldown(issuer):
    verifier = issuer.verifier()
    verifier.verify(issuer.token())

    reasons = {refused(verifier, issuer.token(kid=f"made-up-{n}")) for n in range(50)}

    assert reasons == {errors.UNKNOWN_KEY_ID}
    assert issuer.sandbox.jwks_fetches == 2
    issuer.clock.advance(COOLDOWN_SECONDS)
    refused(verifier, issuer.token(kid="made-up-after-the-cooldown"))
    assert issuer.sandbox.jwks_fetches == 3


@pytest.mark.parametrize("drop_connection", [False, True], ids=["503", "dropped"])
def test_an_outage_keeps_the_last_good_keys_working_past_their_lifespan(issuer, drop_connection):
    verifier = issuer.verifier()
    verifier.verify(issuer.token())
    issuer.sandbox.go_down(drop_connection=drop_connection)

    issuer.clock.advance(LIFESPAN_SECONDS * 5)
    assert verifier.verify(issuer.token(sub="bob")).subject == "bob"
    assert issuer.sandbox.jwks_fetches == 2  # it tried to renew them

    verifier.verify(issuer.token(sub="carol"))
    assert issuer.sandbox.jwks_fetches == 2  # and waits a cooldown before trying again


@pytest.mark.parametrize("drop_connection", [False, True], ids=["503", "dropped"])
def test_an_outage_with_no_cached_keys_makes_identity_unavailable(issuer, drop_connection):
    verifier = issuer.verifier()
    issuer.sandbox.go_down(drop_connection=drop_connection)
    token = issuer.token()

    for _ in range(3):
        with pytest.raises(IdentityUnavailable) as caught:
            verifier.verify(token)
        assert_token_not_revealed(caught.value, token)
    assert caught.value.retry_after_seconds == COOLDOWN_SECONDS
    assert issuer.sandbox.discovery_fetches == 1  # no retry within the cooldown

    issuer.sandbox.come_back()
    issuer.clock.advance(COOLDOWN_SECONDS)
    assert verifier.verify(token).subject == "alice"


def test_an_issuer_that_never_answers_is_given_up_on_after_the_timeout(issuer):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        jwks_url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
        verifier = issuer.verifier(jwks_url=jwks_url, fetch_timeout_seconds=0.2)

        with pytest.raises(IdentityUnavailable):
            verifier.verify(issuer.token())


@pytest.mark.parametrize("options, setting", [
    ({"issuer": "http://auth.example.com"}, "issuer"),
    ({"issuer": "https://auth.example.com", "jwks_url": "http://keys.example.com/jwks"}, "jwks_url"),
    ({"issuer": "https://auth.example.com", "jwks_url": "file:///etc/jwks.json"}, "jwks_url"),
])
def test_key_urls_must_be_https_off_loopback(options, setting):
    with pytest.raises(ValueError, match=setting):
        TokenVerifier(audience="app", **options)


@pytest.mark.parametrize("url", ["http://localhost:1/jwks", "http://127.0.0.2:1/jwks",
                                 "http://[::1]:1/jwks"])
def test_plain_http_is_accepted_for_loopback_hosts(url):
    TokenVerifier("https://auth.example.com", "app", jwks_url=url)


# --- the legacy HS256 secret ------------------------------------------------------------


def test_hs256_is_accepted_only_with_the_secret_setting(issuer):
    token = issuer.sandbox.sign(issuer.claims(), alg="HS256", secret=SECRET)
    with_secret = issuer.verifier(hs256_secret=SECRET)

    assert with_secret.verify(token).subject == "alice"
    assert with_secret.verify(issuer.token(alg="ES256")).subject == "alice"
    assert refused(issuer.verifier(), token) == errors.ALGORITHM_NOT_ALLOWED
    wrong_secret = issuer.sandbox.sign(issuer.claims(), alg="HS256", secret=SECRET + "x")
    assert refused(with_secret, wrong_secret) == errors.BAD_SIGNATURE


@pytest.mark.parametrize("options", [{"hs256_secret": "short"}, {"algorithms": ("HS256",)},
                                     {"algorithms": ("none",)}, {"algorithms": ()}])
def test_unsafe_algorithm_settings_are_refused(options):
    with pytest.raises(ValueError, match="hs256_secret|algorithms"):
        TokenVerifier("https://auth.example.com", "app", **options)


# --- App Check ------------------------------------------------------------------------

PROJECT_NUMBER = "123456789012"
APP_ID = "1:123456789012:android:abc123"


def app_check_claims(project_number: str = PROJECT_NUMBER, **overrides) -> dict:
    claims = {"iss": f"https://firebaseappcheck.googleapis.com/{project_number}",
              "aud": [f"projects/{project_number}", "projects/makeit3d-prod"], "sub": APP_ID,
              "iat": now(), "exp": now() + 3600}
    return {**claims, **overrides}


@pytest.fixture
def app_check(issuer) -> TokenVerifier:
    return app_check_verifier(PROJECT_NUMBER, jwks_url=issuer.url + "/.well-known/jwks.json",
                              verified_cache_size=0, clock=issuer.clock)


def test_an_app_check_token_for_our_project_passes(issuer, app_check):
    verified = app_check.verify(issuer.sandbox.sign(app_check_claims(), headers={"typ": "JWT"}))

    assert verified.subject == APP_ID
    assert issuer.sandbox.discovery_fetches == 0  # the JWKS URL is given: no discovery


@pytest.mark.parametrize("claims, alg, headers, reason", [
    (app_check_claims(aud=["projects/999", "projects/other"]), "RS256", {}, errors.WRONG_AUDIENCE),
    (app_check_claims(iss="https://firebaseappcheck.googleapis.com/999"), "RS256", {},
     errors.WRONG_ISSUER),
    (app_check_claims(), "ES256", {}, errors.ALGORITHM_NOT_ALLOWED),
    (app_check_claims(), "RS256", {"typ": "at+jwt"}, errors.WRONG_TYPE),
], ids=["other-project", "other-issuer", "es256", "typ"])
def test_app_check_tokens_are_refused(issuer, app_check, claims, alg, headers, reason):
    token = issuer.sandbox.sign(claims, alg=alg, headers={"typ": "JWT", **headers})

    assert refused(app_check, token) == reason


def test_app_check_wants_the_project_number():
    with pytest.raises(ValueError, match="project number"):
        app_check_verifier("makeit3d-prod")


# --- extra checks, claims -------------------------------------------------------------


def test_an_authorized_party_check_refuses_a_foreign_azp(issuer):
    verifier = issuer.verifier(extra_checks=[require_authorized_party({"https://makeit3d.app"})])

    assert verifier.verify(issuer.token(azp="https://makeit3d.app")).subject == "alice"
    assert verifier.verify(issuer.token()).subject == "alice"  # native apps send none
    assert refused(verifier, issuer.token(azp="https://evil.example")) == errors.WRONG_AUTHORIZED_PARTY


def test_claim_at_reads_nested_and_namespaced_claims():
    claims = {"app_metadata": {"plan": "pro", "limits": {"daily": 5}}, "flat": "x",
              "https://makeit3d.app/plan": "team", "https://makeit3d.app/meta": {"tier": 2}}

    assert claim_at(claims, "app_metadata.plan") == "pro"
    assert claim_at(claims, "app_metadata.limits.daily") == 5
    assert claim_at(claims, "https://makeit3d.app/plan") == "team"
    assert claim_at(claims, "https://makeit3d.app/meta.tier") == 2
    assert claim_at(claims, "app_metadata.missing") is None
    assert claim_at(claims, "flat.deeper") is None
    assert claim_at(claims, "nothing") is None


# --- the verified-token cache ------------------------------------------------------------


def test_a_repeated_token_is_answered_from_the_cache_without_its_key(issuer):
    verifier = issuer.verifier(verified_cache_size=100)
    token = issuer.token()
    first = verifier.verify(token)

    # The key that signed it is gone: only the cache can still accept it.
    issuer.sandbox.rotate("RS256")
    issuer.clock.advance(COOLDOWN_SECONDS)

    assert verifier.verify(token) is first
    assert issuer.sandbox.jwks_fetches == 1
    assert refused(issuer.verifier(), token) == errors.UNKNOWN_KEY_ID  # uncached: refused


def test_a_cached_token_expires_with_the_token(issuer):
    verifier = issuer.verifier(verified_cache_size=100, leeway_seconds=0)
    token = issuer.token(exp=now() + 1)
    verifier.verify(token)

    def expired() -> bool:
        try:
            verifier.verify(token)
        except InvalidToken as error:
            return error.reason == errors.EXPIRED
        return False

    wait_until(expired, timeout=3)


def verified(subject: str, expires_at: float) -> VerifiedToken:
    return VerifiedToken(subject, "https://issuer.example", {}, expires_at)


def test_the_cache_keeps_entries_until_exp_and_drops_the_least_recently_used():
    clock = FakeClock()
    cache = VerifiedTokenCache(max_entries=2, clock=clock)
    cache.put("token-a", verified("a", clock.now + 60))
    cache.put("token-b", verified("b", clock.now + 600))
    cache.get("token-a")
    cache.put("token-c", verified("c", clock.now + 600))

    assert cache.get("token-b") is None and len(cache) == 2
    assert cache.get("token-a").subject == "a"
    clock.advance(60)
    assert cache.get("token-a") is None
    assert cache.get("token-c").subject == "c"


def test_the_cache_refuses_a_token_already_past_exp():
    clock = FakeClock()
    cache = VerifiedTokenCache(max_entries=10, clock=clock)
    cache.put("token", verified("a", clock.now - 1))

    assert len(cache) == 0
