"""Settings: defaults, required values, malformed values, and a clean stop at start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bff.settings import Settings, SettingsError

REQUIRED = {"REDIS_URL": "redis://127.0.0.1:6379/0", "TRIPO_API_KEY": "tsk_abc", "OPENAI_API_KEY": "sk-abc"}
# A live configuration that accepts address-based clients.
LIVE = {**REQUIRED, "BFF_ALLOW_ANONYMOUS": "true"}


def test_defaults_match_the_documented_ones():
    settings = Settings.from_env(LIVE)

    assert settings.tripo_api_base_url == "https://openapi.tripo3d.ai/v3"
    assert settings.tripo_model_version == "v3.1-20260211"
    assert settings.openai_api_base_url == "https://api.openai.com/v1"
    assert settings.openai_image_model == "gpt-image-2.5-sunburst"
    assert settings.bff_poll_interval_seconds == 3
    assert settings.bff_task_deadline_seconds == 1800
    assert settings.tripo_url_ttl_seconds == 300


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_missing_required_setting_is_named(name):
    environ = {k: v for k, v in LIVE.items() if k != name}

    with pytest.raises(SettingsError, match=f"^{name} is required"):
        Settings.from_env(environ)


@pytest.mark.parametrize("name, value, fragment", [
    ("TRIPO_API_BASE_URL", "openapi.tripo3d.ai", "must be an http(s) URL"),
    ("REDIS_URL", "http://localhost", "must be a redis://"),
    ("BFF_POLL_INTERVAL_SECONDS", "soon", "could not convert"),
    ("BFF_TASK_DEADLINE_SECONDS", "-5", "must be a number of at least 0.01"),
    ("BFF_TASK_DEADLINE_SECONDS", "inf", "must be a number of at least 0.01"),
    ("BFF_POLL_INTERVAL_SECONDS", "nan", "must be a number of at least 0.01"),
    ("BFF_RESULT_TTL_SECONDS", "0", "must be a number of at least 0.01"),
    ("BFF_LOG_LEVEL", "LOUD", "must be DEBUG"),
    ("BFF_STORAGE_URL", "https://bucket.s3.amazonaws.com", "s3://BUCKET or s3://BUCKET/PREFIX"),
    ("BFF_S3_ENDPOINT_URL", "r2.cloudflarestorage.com", "must be an http(s) URL"),
    ("BFF_S3_ADDRESSING_STYLE", "dns", "must be path or virtual"),
    ("BFF_STORAGE_LINK_SECONDS", "0", "between 1 and 604800"),
    ("BFF_STORAGE_LINK_SECONDS", "604801", "between 1 and 604800"),
    ("BFF_MAX_MODEL_MB", "0", "must be a number of at least 0.01"),
])
def test_a_malformed_setting_is_named(name, value, fragment):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**LIVE, name: value})

    assert str(raised.value).startswith(name) and fragment in str(raised.value)


def test_a_malformed_secret_is_not_echoed():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**LIVE, "REDIS_URL": "http://user:hunter2@host"})

    assert "hunter2" not in str(raised.value)


def test_object_storage_is_off_unless_set_and_its_keys_are_secrets():
    assert Settings.from_env(LIVE).bff_storage_url is None
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**LIVE, "BFF_STORAGE_URL": "s3://AKIAKEY:hunter2secret@bucket"})
    assert "hunter2secret" not in str(raised.value)

    settings = Settings.from_env({**LIVE, "BFF_STORAGE_URL": "s3://results/bff", "AWS_REGION": "auto",
                                  "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cret-value"})

    assert (settings.bff_storage_url, settings.aws_region, settings.bff_storage_link_seconds) == (
        "s3://results/bff", "auto", 900)
    assert settings.max_model_bytes == 200 * 1024 * 1024
    assert {"AKIAEXAMPLE", "s3cret-value"} <= set(settings.secrets())
    assert "s3cret-value" not in repr(settings)


@pytest.mark.parametrize("entry_point", ["import wsgi", "import workers.actors"])
def test_web_and_worker_stop_at_start_naming_the_missing_variable(entry_point):
    environ = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    environ.update(REDIS_URL=REQUIRED["REDIS_URL"], OPENAI_API_KEY="sk-abc")

    finished = subprocess.run([sys.executable, "-c", entry_point], env=environ, capture_output=True, text=True,
                              timeout=60)

    assert finished.returncode == 2
    assert "TRIPO_API_KEY is required but not set" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_sandbox_mode_needs_no_keys_and_uses_local_stand_ins():
    settings = Settings.from_env({"BFF_SANDBOX": "true", "BFF_SANDBOX_PORT": "9100"})

    assert settings.tripo_api_key == "tsk_sandbox" and settings.redis_url == "embedded://"
    assert settings.tripo_api_base_url == "http://127.0.0.1:9100/tripo/v3"
    assert settings.openai_api_base_url == "http://127.0.0.1:9100/openai/v1"


def test_sandbox_mode_refuses_a_real_provider_url():
    with pytest.raises(SettingsError, match="TRIPO_API_BASE_URL must point at a local stand-in"):
        Settings.from_env({"BFF_SANDBOX": "true", "TRIPO_API_BASE_URL": "https://openapi.tripo3d.ai/v3"})


def test_the_embedded_store_is_refused_outside_sandbox_mode():
    with pytest.raises(SettingsError, match="needs BFF_SANDBOX=true"):
        Settings.from_env({**LIVE, "REDIS_URL": "embedded://"})


def test_secrets_are_hidden_from_repr_and_include_the_redis_password():
    settings = Settings.from_env({**LIVE, "REDIS_URL": "redis://:hunter2@redis.internal:6379/0"})

    assert "tsk_abc" not in repr(settings) and "hunter2" not in repr(settings)
    assert {"tsk_abc", "sk-abc", "hunter2"} <= set(settings.secrets())


def test_plain_client_keys_are_secrets_for_the_log_scrubber_but_digests_are_not():
    digest = "a" * 64
    settings = Settings.from_env({**LIVE, "BFF_API_KEYS": f"ios=plain-key-0123456789abcdefgh,web=sha256:{digest}"})

    assert "plain-key-0123456789abcdefgh" in settings.secrets()
    assert "plain-key-0123456789abcdefgh" not in repr(settings)


def test_the_metrics_token_is_a_secret_of_at_least_24_characters():
    token = "metrics-token-0123456789abcdef"
    settings = Settings.from_env({**LIVE, "BFF_METRICS_TOKEN": token})

    assert token in settings.secrets() and token not in repr(settings)
    with pytest.raises(SettingsError, match="BFF_METRICS_TOKEN must be at least 24 characters; got \\(hidden\\)"):
        Settings.from_env({**LIVE, "BFF_METRICS_TOKEN": "short"})


# --- who may call -----------------------------------------------------------------------

SIGN_IN = {"BFF_AUTH_ISSUER": "https://makeit3d.supabase.co/auth/v1", "BFF_AUTH_AUDIENCE": "authenticated"}


def test_outside_sandbox_mode_some_identity_must_be_configured():
    with pytest.raises(SettingsError, match="BFF_ALLOW_ANONYMOUS=true"):
        Settings.from_env(REQUIRED)

    assert Settings.from_env({**REQUIRED, **SIGN_IN}).bff_auth_issuer == SIGN_IN["BFF_AUTH_ISSUER"]
    assert Settings.from_env({**REQUIRED, "BFF_API_KEYS": "ios=plain-key-0123456789abcdefgh"}).bff_auth_issuer == ""


def test_sandbox_mode_signs_users_in_at_its_local_issuer_unless_told_otherwise():
    from sandbox.identity import SANDBOX_AUDIENCE

    default = Settings.from_env({"BFF_SANDBOX": "true", "BFF_SANDBOX_PORT": "9100"})
    anonymous = Settings.from_env({"BFF_SANDBOX": "true", "BFF_ALLOW_ANONYMOUS": "true"})

    assert default.bff_auth_issuer == "http://127.0.0.1:9100/auth" and default.uses_sandbox_issuer
    assert default.bff_auth_audience == SANDBOX_AUDIENCE  # what the local issuer puts in its tokens
    assert anonymous.bff_auth_issuer == "" and not anonymous.uses_sandbox_issuer


def test_sign_in_defaults_match_the_documented_ones():
    settings = Settings.from_env({**REQUIRED, **SIGN_IN})

    assert settings.bff_auth_algorithms == ("RS256", "ES256") and settings.bff_auth_leeway_seconds == 60
    assert settings.bff_auth_jwks_url == "" and settings.bff_auth_hs256_secret == ""
    assert settings.bff_app_check_jwks_url == "https://firebaseappcheck.googleapis.com/v1/jwks"


@pytest.mark.parametrize("changes, fragment", [
    ({"BFF_AUTH_AUDIENCE": ""}, "BFF_AUTH_AUDIENCE is required with BFF_AUTH_ISSUER"),
    ({"BFF_AUTH_ISSUER": "", "BFF_API_KEYS": "ios=plain-key-0123456789abcdefgh"}, "BFF_AUTH_AUDIENCE needs"),
    ({"BFF_AUTH_ISSUER": "http://auth.makeit3d.app"}, "BFF_AUTH_ISSUER must be an https URL"),
    ({"BFF_AUTH_JWKS_URL": "http://auth.makeit3d.app/jwks"}, "BFF_AUTH_JWKS_URL must be an https URL"),
    ({"BFF_AUTH_ALGORITHMS": "RS256,HS256"}, "BFF_AUTH_ALGORITHMS must list only"),
    ({"BFF_AUTH_ALGORITHMS": "none"}, "BFF_AUTH_ALGORITHMS must list only"),
    ({"BFF_AUTH_HS256_SECRET": "too-short"}, "BFF_AUTH_HS256_SECRET must be at least 32 bytes"),
    ({"BFF_APP_CHECK_PROJECT_NUMBER": "makeit3d-prod"}, "project NUMBER"),
    ({"BFF_PLAN_DAILY_CREDITS": "pro=2000"}, "BFF_PLAN_DAILY_CREDITS needs BFF_PLAN_CLAIM"),
], ids=["no-audience", "audience-without-issuer", "http-issuer", "http-jwks", "hs256", "none", "short-secret",
        "project-id", "plans-without-claim"])
def test_an_unsafe_or_half_sign_in_configuration_stops_the_start(changes, fragment):
    with pytest.raises(SettingsError, match=fragment) as raised:
        Settings.from_env({**REQUIRED, **SIGN_IN, **changes})

    assert "too-short" not in str(raised.value)


def test_a_loopback_issuer_may_use_plain_http():
    local = {"BFF_AUTH_ISSUER": "http://127.0.0.1:54321/auth/v1", "BFF_AUTH_AUDIENCE": "authenticated"}

    assert Settings.from_env({**REQUIRED, **local}).bff_auth_issuer == "http://127.0.0.1:54321/auth/v1"


def test_the_legacy_hs256_secret_is_a_secret():
    secret = "a-legacy-supabase-jwt-secret-of-40-chars!"
    settings = Settings.from_env({**REQUIRED, **SIGN_IN, "BFF_AUTH_HS256_SECRET": secret})

    assert secret in settings.secrets() and secret not in repr(settings)
