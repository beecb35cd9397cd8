"""Which image URLs the BFF passes on to Tripo, which downloads them itself.

The check reads the URL alone and does no DNS lookup: the BFF never fetches the URL,
so what matters is that it does not name a host that is obviously internal. It is the
one place these rules live.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
# Suffixes reserved or commonly used for private networks (RFC 6761, RFC 6762, RFC 8375).
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".home", ".corp",
                      ".localdomain", ".test", ".invalid", ".example")


def image_url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` is not acceptable as an image for Tripo, or None when it is."""
    if len(url) > MAX_URL_LENGTH:
        return f"Must be at most {MAX_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return "Not a valid URL."
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        return "Must be an https:// URL." if not allow_http else "Must be an http(s):// URL."
    if parts.username is not None or parts.password is not None:
        return "Must not contain a user name or password."
    if not host:
        return "Must name a host."
    return _host_problem(host.rstrip("."))


def _host_problem(host: str) -> str | None:
    address = _ip_address(host)
    if address is not None:
        return None if address.is_global else "Must not point at a private, loopback or reserved address."
    if host.replace(".", "").isdigit() or host.startswith("0x"):
        return "Must not use a numeric host that is not a plain IP address."
    if "." not in host or host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
        return "Must name a public host (not localhost, a single-label or an internal name)."
    return None


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address
