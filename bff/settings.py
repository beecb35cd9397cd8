"""Settings: every environment variable the BFF reads, parsed once into one object.

Each setting is declared once in ``_SPECS`` with its default and its parser, and the
README's settings table lists the same names and defaults. A missing or malformed value
raises ``SettingsError`` naming the variable, so a process stops at start instead of
failing on its first request.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import urlparse

from .clients import ClientKeys


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
        # redis-py opens unix:// but the rate limiter's storage (limits) does not: refused
        # here rather than failing later inside the web process.
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


def _client_keys(value: str) -> ClientKeys | None:
    return ClientKeys.parse(value) if value.strip() else None


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


@dataclass(frozen=True)
class _Spec:
    default: str | None  # None: required (unless sandbox mode supplies it)
    parse: Callable[[str], object]
    secret: bool = False
    sandbox_default: str | None = None  # used instead of ``default`` when BFF_SANDBOX is on


# The in-process store of sandbox mode (see bff.redis_client); never for production.
EMBEDDED_REDIS_URL = "embedded://"
SANDBOX_TRIPO_KEY = "tsk_sandbox"
SANDBOX_OPENAI_KEY = "sk-sandbox"
_SANDBOX_ROOT = "http://127.0.0.1:{sandbox_port}"


# The single list of variables. ``None`` as default means required.
_SPECS: dict[str, _Spec] = {
    "BFF_SANDBOX": _Spec("false", _flag),
    "BFF_SANDBOX_PORT": _Spec("8765", _port),
    "BFF_SANDBOX_TASK_SECONDS": _Spec("20", _positive_number),
    "REDIS_URL": _Spec(None, _redis_url, secret=True, sandbox_default=EMBEDDED_REDIS_URL),
    "REDIS_TLS_VERIFY": _Spec("true", _flag),
    "TRIPO_API_KEY": _Spec(None, _text, secret=True, sandbox_default=SANDBOX_TRIPO_KEY),
    "TRIPO_API_BASE_URL": _Spec("https://openapi.tripo3d.ai/v3", _url, sandbox_default=f"{_SANDBOX_ROOT}/tripo/v3"),
    "TRIPO_MODEL_VERSION": _Spec("v3.1-20260211", _text),
    "TRIPO_REFINE_MODEL_VERSION": _Spec("v3.0-20250812", _text),
    "TRIPO_URL_TTL_SECONDS": _Spec("300", _positive_number),
    "OPENAI_API_KEY": _Spec(None, _text, secret=True, sandbox_default=SANDBOX_OPENAI_KEY),
    "OPENAI_API_BASE_URL": _Spec("https://api.openai.com/v1", _url, sandbox_default=f"{_SANDBOX_ROOT}/openai/v1"),
    "OPENAI_IMAGE_MODEL": _Spec("gpt-image-2.5-sunburst", _text),
    "BFF_POLL_INTERVAL_SECONDS": _Spec("3", _positive_number),
    "BFF_TASK_DEADLINE_SECONDS": _Spec("1800", _positive_number),
    "BFF_RESULT_TTL_SECONDS": _Spec("86400", _positive_number),
    "BFF_MAX_UPLOAD_MB": _Spec("20", _positive_number),
    "BFF_LOG_LEVEL": _Spec("INFO", _log_level),
    "BFF_API_KEYS": _Spec("", _client_keys, secret=True),
    "BFF_OPENAI_REQUESTS_PER_MINUTE": _Spec("4", _positive_int),
    "BFF_TRIPO_REFINE_REQUESTS_PER_MINUTE": _Spec("6", _positive_int),
    "BFF_TRIPO_OTHER_REQUESTS_PER_MINUTE": _Spec("12", _positive_int),
    "BFF_STATUS_REQUESTS_PER_MINUTE": _Spec("600", _positive_int),
    "BFF_TRIPO_CONCURRENCY": _Spec("10", _positive_int),
    "BFF_TRIPO_REFINE_CONCURRENCY": _Spec("5", _positive_int),
    "BFF_OPENAI_TASKS_PER_MINUTE": _Spec("5", _positive_int),
    "BFF_OPENAI_WINDOW_SECONDS": _Spec("60", _positive_number),
}


@dataclass(frozen=True)
class Settings:
    bff_sandbox: bool
    bff_sandbox_port: int
    bff_sandbox_task_seconds: float
    redis_url: str = field(repr=False)
    redis_tls_verify: bool
    tripo_api_key: str = field(repr=False)
    tripo_api_base_url: str
    tripo_model_version: str
    tripo_refine_model_version: str
    tripo_url_ttl_seconds: float
    openai_api_key: str = field(repr=False)
    openai_api_base_url: str
    openai_image_model: str
    bff_poll_interval_seconds: float
    bff_task_deadline_seconds: float
    bff_result_ttl_seconds: float
    bff_max_upload_mb: float
    bff_log_level: str
    bff_api_keys: ClientKeys | None = field(repr=False)
    bff_openai_requests_per_minute: int
    bff_tripo_refine_requests_per_minute: int
    bff_tripo_other_requests_per_minute: int
    bff_status_requests_per_minute: int
    bff_tripo_concurrency: int
    bff_tripo_refine_concurrency: int
    bff_openai_tasks_per_minute: int
    bff_openai_window_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, spec in _SPECS.items():
            sandbox_default = spec.sandbox_default if values.get("bff_sandbox") else None
            if sandbox_default:
                sandbox_default = sandbox_default.format(sandbox_port=values["bff_sandbox_port"])
            values[name.lower()] = _read(name, spec, environ, sandbox_default)
        if values["redis_url"] == EMBEDDED_REDIS_URL and not values["bff_sandbox"]:
            raise SettingsError(f"REDIS_URL {EMBEDDED_REDIS_URL} (the in-process store) needs BFF_SANDBOX=true")
        if values["bff_sandbox"]:
            _require_local_providers(values)
        return cls(**values)

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

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a response or a log line (the Redis password
        on its own too, as an error message may quote it without the URL)."""
        values = [getattr(self, name.lower()) for name, spec in _SPECS.items() if spec.secret]
        values.append(urlparse(self.redis_url).password)
        values.extend(self.bff_api_keys.plain_keys if self.bff_api_keys else ())
        return tuple(value for value in values if value and isinstance(value, str))


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


def _require_local_providers(values: dict) -> None:
    """Sandbox mode promises no real provider call: its provider URLs must be local."""
    for name in ("TRIPO_API_BASE_URL", "OPENAI_API_BASE_URL"):
        host = urlparse(values[name.lower()]).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SettingsError(f"{name} must point at a local stand-in in sandbox mode (BFF_SANDBOX=true)")


def load_settings_or_exit() -> Settings:
    """Settings for a process that is starting: on a bad setting, say which and stop."""
    try:
        return Settings.from_env()
    except SettingsError as error:
        print(f"makeit3d BFF cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
