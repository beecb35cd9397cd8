"""Settings: every environment variable the BFF reads, parsed once into one object.

Each setting is declared once, as a field of ``Settings`` with its default and its
parser; the README's settings table lists the same names and defaults. A missing or malformed value
raises ``SettingsError`` naming the variable, so a process stops at start instead of
failing on its first request.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from bff.credits.prices import TripoPrices, credit_pairs
from bff.identity.app_keys import MIN_KEY_LENGTH, ClientKeys
from bff.identity.keys import ASYMMETRIC_ALGORITHMS, is_safe_key_url
from bff.identity.tokens import APP_CHECK_JWKS_URL, MIN_HS256_SECRET_BYTES
from bff.results.locations import LINK_SECONDS_MAX, parse_storage_url


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _text(value: str) -> str:
    return value.strip()


def _url(value: str) -> str:
    parsed = urlparse(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return value.strip().rstrip("/")


def _redis_url(value: str) -> str:
    scheme = urlparse(value.strip()).scheme
    if scheme == "unix":
        # redis-py opens unix://, but every deployment reaches Redis over TCP and nothing is
        # tested over a socket: refused here rather than trusted untested.
        raise ValueError("must be a redis:// or rediss:// URL; a unix:// socket is not supported")
    if value.strip() != EMBEDDED_REDIS_URL and scheme not in ("redis", "rediss"):
        raise ValueError("must be a redis:// or rediss:// URL")
    return value.strip()


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _positive_number(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0.01:
        raise ValueError("must be a number of at least 0.01")
    return number


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError("must be a TCP port number")
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be a whole number of at least 1")
    return number


def _credits(value: str) -> int:
    if not value.strip().isdigit():
        raise ValueError("must be a whole number of credits, at least 0")
    return int(value)


def _optional_credits(value: str) -> int | None:
    return _credits(value) if value.strip() else None


def _client_keys(value: str) -> ClientKeys | None:
    return ClientKeys.parse(value) if value.strip() else None


def _bearer_token(value: str) -> str:
    token = value.strip()
    if token and len(token) < MIN_KEY_LENGTH:
        raise ValueError(f"must be at least {MIN_KEY_LENGTH} characters")
    return token


def _key_url(value: str) -> str:
    """An issuer or key URL: anyone who can answer it can sign tokens for any user."""
    if value.strip() and not is_safe_key_url(value.strip()):
        raise ValueError("must be an https URL (plain http only for a loopback host)")
    return value.strip()  # not rstrip("/"): an issuer is compared exactly (Auth0's ends with "/")


def _names(value: str) -> tuple[str, ...]:
    return tuple(filter(None, (item.strip() for item in value.split(","))))


def _algorithms(value: str) -> tuple[str, ...]:
    names = _names(value)
    if not names or set(names) - ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"must list only these public-key algorithms: {', '.join(sorted(ASYMMETRIC_ALGORITHMS))} "
                         "(HS256 is enabled by BFF_AUTH_HS256_SECRET alone)")
    return names


def _hs256_secret(value: str) -> str:
    if value and len(value.encode()) < MIN_HS256_SECRET_BYTES:
        raise ValueError(f"must be at least {MIN_HS256_SECRET_BYTES} bytes")
    return value


def _leeway(value: str) -> float:
    seconds = float(value)
    if not 0 <= seconds <= 600:
        raise ValueError("must be 0..600 seconds")
    return seconds


def _project_number(value: str) -> str:
    if value.strip() and not value.strip().isdigit():
        raise ValueError("must be the Firebase project NUMBER (digits), not the project id")
    return value.strip()


def _optional_text(value: str) -> str | None:
    return value.strip() or None


def _optional_url(value: str) -> str | None:
    return _url(value) if value.strip() else None


def _storage_url(value: str) -> str | None:
    if not value.strip():
        return None
    parse_storage_url(value.strip())
    return value.strip()


def _addressing_style(value: str) -> str | None:
    style = value.strip().lower()
    if style not in ("", "path", "virtual"):
        raise ValueError("must be path or virtual (or unset: automatic)")
    return style or None


def _link_seconds(value: str) -> int:
    seconds = int(value)
    if not 1 <= seconds <= LINK_SECONDS_MAX:
        raise ValueError(f"must be between 1 and {LINK_SECONDS_MAX} seconds (7 days)")
    return seconds


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


@dataclass(frozen=True)
class _Spec:
    default: str | None  # None: required (unless sandbox mode supplies it)
    parse: Callable[[str], Any]
    secret: bool = False
    sandbox_default: str | None = None  # used instead of ``default`` when BFF_SANDBOX is on


def _setting(default: str | None, parse: Callable[[str], Any], *, secret: bool = False,
             sandbox_default: str | None = None) -> Any:
    """A field of ``Settings`` read from the environment variable of the same name in
    upper case: the one place each setting is declared."""
    return field(repr=not secret, metadata={"spec": _Spec(default, parse, secret, sandbox_default)})


# The in-process store of sandbox mode (see bff.redis_client); never for production.
EMBEDDED_REDIS_URL = "embedded://"
SANDBOX_TRIPO_KEY = "tsk_sandbox"
SANDBOX_OPENAI_KEY = "sk-sandbox"
_SANDBOX_ROOT = "http://127.0.0.1:{sandbox_port}"
# The sandbox's local sign-in issuer (sandbox/identity.py, mounted at /auth) and the
# audience of the tokens it mints.
SANDBOX_AUTH_ISSUER = f"{_SANDBOX_ROOT}/auth"
SANDBOX_AUTH_AUDIENCE = "makeit3d-sandbox"


@dataclass(frozen=True)
class Settings:
    # Sandbox settings come first: the sandbox defaults of the others depend on them.
    bff_sandbox: bool = _setting("false", _flag)
    bff_sandbox_port: int = _setting("8765", _port)
    bff_sandbox_task_seconds: float = _setting("20", _positive_number)
    redis_url: str = _setting(None, _redis_url, secret=True, sandbox_default=EMBEDDED_REDIS_URL)
    redis_tls_verify: bool = _setting("true", _flag)
    tripo_api_key: str = _setting(None, _text, secret=True, sandbox_default=SANDBOX_TRIPO_KEY)
    tripo_api_base_url: str = _setting("https://openapi.tripo3d.ai/v3", _url,
                                       sandbox_default=f"{_SANDBOX_ROOT}/tripo/v3")
    tripo_model_version: str = _setting("v3.1-20260211", _text)
    tripo_refine_model_version: str = _setting("v3.0-20250812", _text)
    tripo_url_ttl_seconds: float = _setting("300", _positive_number)
    openai_api_key: str = _setting(None, _text, secret=True, sandbox_default=SANDBOX_OPENAI_KEY)
    openai_api_base_url: str = _setting("https://api.openai.com/v1", _url,
                                        sandbox_default=f"{_SANDBOX_ROOT}/openai/v1")
    openai_image_model: str = _setting("gpt-image-2.5-sunburst", _text)
    bff_poll_interval_seconds: float = _setting("3", _positive_number)
    bff_task_deadline_seconds: float = _setting("1800", _positive_number)
    bff_result_ttl_seconds: float = _setting("86400", _positive_number)
    bff_max_upload_mb: float = _setting("20", _positive_number)
    bff_log_level: str = _setting("INFO", _log_level)
    bff_api_keys: ClientKeys | None = _setting("", _client_keys, secret=True)
    bff_openai_requests_per_minute: int = _setting("4", _positive_int)
    bff_tripo_refine_requests_per_minute: int = _setting("6", _positive_int)
    bff_tripo_other_requests_per_minute: int = _setting("12", _positive_int)
    bff_status_requests_per_minute: int = _setting("600", _positive_int)
    bff_tripo_concurrency: int = _setting("10", _positive_int)
    bff_tripo_refine_concurrency: int = _setting("5", _positive_int)
    bff_openai_tasks_per_minute: int = _setting("5", _positive_int)
    bff_openai_window_seconds: float = _setting("60", _positive_number)
    # Metrics
    bff_metrics_token: str = _setting("", _bearer_token, secret=True)
    # End users' sign-in tokens and App Check (bff.identity, bff.web.clients)
    bff_auth_issuer: str = _setting("", _key_url)
    bff_auth_audience: str = _setting("", _text)
    bff_auth_jwks_url: str = _setting("", _key_url)
    bff_auth_algorithms: tuple[str, ...] = _setting("RS256,ES256", _algorithms)
    bff_auth_leeway_seconds: float = _setting("60", _leeway)
    bff_auth_hs256_secret: str = _setting("", _hs256_secret, secret=True)
    bff_auth_authorized_parties: tuple[str, ...] = _setting("", _names)
    bff_app_check_project_number: str = _setting("", _project_number)
    bff_app_check_jwks_url: str = _setting(APP_CHECK_JWKS_URL, _key_url)
    bff_allow_anonymous: bool = _setting("false", _flag)
    # Credits
    bff_user_daily_credits: int | None = _setting("", _optional_credits)
    bff_plan_claim: str = _setting("", _text)
    bff_plan_daily_credits: dict[str, int] = _setting("", credit_pairs)
    bff_service_daily_credits: int | None = _setting("", _optional_credits)
    bff_openai_credits_per_image: int = _setting("5", _credits)
    bff_tripo_prices: TripoPrices = _setting("", TripoPrices.parse)
    bff_ledger_days: int = _setting("90", _positive_int)
    # Redis connections of a web process
    bff_redis_max_connections: int = _setting("5", _positive_int)
    # Results in object storage (bff/results); unset BFF_STORAGE_URL keeps results at the provider and in Redis.
    bff_storage_url: str | None = _setting("", _storage_url, secret=True)  # hidden: a mistake could hold a key
    bff_s3_endpoint_url: str | None = _setting("", _optional_url)
    bff_s3_addressing_style: str | None = _setting("", _addressing_style)
    aws_access_key_id: str | None = _setting("", _optional_text, secret=True)
    aws_secret_access_key: str | None = _setting("", _optional_text, secret=True)
    aws_region: str | None = _setting("", _optional_text)
    bff_storage_link_seconds: int = _setting("900", _link_seconds)
    bff_max_model_mb: float = _setting("200", _positive_number)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, spec in specs().items():
            sandbox_default = spec.sandbox_default if values.get("bff_sandbox") else None
            if sandbox_default:
                sandbox_default = sandbox_default.format(sandbox_port=values["bff_sandbox_port"])
            values[name.lower()] = _read(name, spec, environ, sandbox_default)
        if values["redis_url"] == EMBEDDED_REDIS_URL and not values["bff_sandbox"]:
            raise SettingsError(f"REDIS_URL {EMBEDDED_REDIS_URL} (the in-process store) needs BFF_SANDBOX=true")
        if values["bff_sandbox"]:
            _require_local_providers(values)
        _settle_identity(values)
        if values["bff_plan_daily_credits"] and not values["bff_plan_claim"]:
            raise SettingsError("BFF_PLAN_DAILY_CREDITS needs BFF_PLAN_CLAIM: without it no user has a plan, "
                                "and every user would get BFF_USER_DAILY_CREDITS")
        return cls(**values)

    @property
    def uses_sandbox_issuer(self) -> bool:
        """Whether users sign in at the sandbox's own local issuer (which mints tokens)."""
        return self.bff_sandbox and self.bff_auth_issuer == SANDBOX_AUTH_ISSUER.format(
            sandbox_port=self.bff_sandbox_port)

    @property
    def embedded_store(self) -> bool:
        return self.redis_url == EMBEDDED_REDIS_URL

    @property
    def tripo_url_cache_seconds(self) -> float:
        """How long a signed Tripo URL is handed out: its lifetime less a safety margin,
        so a client that gets it has time to start the download."""
        return self.tripo_url_ttl_seconds * 0.8

    @property
    def max_upload_bytes(self) -> int:
        return int(self.bff_max_upload_mb * 1024 * 1024)

    @property
    def max_model_bytes(self) -> int:
        return int(self.bff_max_model_mb * 1024 * 1024)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a response or a log line (the Redis password
        on its own too, as an error message may quote it without the URL)."""
        values = [getattr(self, name.lower()) for name, spec in specs().items() if spec.secret]
        values.append(urlparse(self.redis_url).password)
        values.extend(self.bff_api_keys.plain_keys if self.bff_api_keys else ())
        return tuple(value for value in values if value and isinstance(value, str))


def specs() -> dict[str, _Spec]:
    """Every environment variable the BFF reads, in declaration order, with its spec."""
    return {item.name.upper(): item.metadata["spec"] for item in fields(Settings)}


def _read(name: str, spec: _Spec, environ: Mapping[str, str], sandbox_default: str | None) -> object:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        raw = sandbox_default or spec.default
        if raw is None:
            hint = " (or set BFF_SANDBOX=true to run on provider stand-ins)" if spec.sandbox_default else ""
            raise SettingsError(f"{name} is required but not set{hint}")
    try:
        return spec.parse(raw)
    except ValueError as error:
        shown = "(hidden)" if spec.secret else repr(raw)
        raise SettingsError(f"{name} {error}; got {shown}") from None


def _require_local_providers(values: dict[str, Any]) -> None:
    """Sandbox mode promises no real provider call: its provider URLs must be local."""
    for name in ("TRIPO_API_BASE_URL", "OPENAI_API_BASE_URL"):
        host = urlparse(values[name.lower()]).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SettingsError(f"{name} must point at a local stand-in in sandbox mode (BFF_SANDBOX=true)")


def _settle_identity(values: dict[str, Any]) -> None:
    """Who may call. Sandbox mode with no identity configured signs users in at its local
    issuer; outside sandbox mode, no identity at all must be asked for by name."""
    identity_chosen = values["bff_auth_issuer"] or values["bff_api_keys"] or values["bff_allow_anonymous"]
    if values["bff_sandbox"] and not identity_chosen:
        values["bff_auth_issuer"] = SANDBOX_AUTH_ISSUER.format(sandbox_port=values["bff_sandbox_port"])
        values["bff_auth_audience"] = values["bff_auth_audience"] or SANDBOX_AUTH_AUDIENCE
    elif not identity_chosen:
        raise SettingsError("no caller identity is configured: set BFF_AUTH_ISSUER (users' sign-in tokens) "
                            "and/or BFF_API_KEYS (app keys), or BFF_ALLOW_ANONYMOUS=true to accept callers "
                            "told apart only by their address (see the README for what that costs)")
    if values["bff_auth_issuer"] and not values["bff_auth_audience"]:
        raise SettingsError("BFF_AUTH_AUDIENCE is required with BFF_AUTH_ISSUER")
    if not values["bff_auth_issuer"]:
        for name in ("BFF_AUTH_AUDIENCE", "BFF_AUTH_JWKS_URL", "BFF_AUTH_HS256_SECRET", "BFF_AUTH_AUTHORIZED_PARTIES"):
            if values[name.lower()]:
                raise SettingsError(f"{name} needs BFF_AUTH_ISSUER: without it no sign-in token is checked")


def load_settings_or_exit() -> Settings:
    """Settings for a process that is starting: on a bad setting, say which and stop."""
    try:
        return Settings.from_env()
    except SettingsError as error:
        print(f"makeit3d BFF cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
