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

from bff.identity.app_keys import ClientKeys
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
    if value.strip() != EMBEDDED_REDIS_URL and urlparse(value.strip()).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
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


def load_settings_or_exit() -> Settings:
    """Settings for a process that is starting: on a bad setting, say which and stop."""
    try:
        return Settings.from_env()
    except SettingsError as error:
        print(f"makeit3d BFF cannot start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
