"""App keys (``BFF_API_KEYS``): which app a request's ``X-API-Key`` names.

Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every
configured key (no early exit), so the comparison time says nothing about a key; keys
may be configured as digests so the plain keys need not sit in the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

MIN_KEY_LENGTH = 24
_DIGEST_PREFIX = "sha256:"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClientKeys:
    digests: tuple[tuple[str, bytes], ...]  # (client name, SHA-256 of its key)
    # Keys configured in plain text, kept only so the log scrubber can hide them.
    plain_keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, raw: str) -> ClientKeys:
        """``name=key`` or ``name=sha256:<hex digest>`` pairs, separated by commas."""
        entries, plain_keys = [], []
        for pair in filter(None, (item.strip() for item in raw.split(","))):
            name, separator, key = pair.partition("=")
            if not separator or not _NAME.match(name.strip()):
                raise ValueError("must be name=key pairs separated by commas (names: letters, digits, . _ -)")
            entries.append((name.strip(), _digest_of(key.strip())))
            if not key.strip().startswith(_DIGEST_PREFIX):
                plain_keys.append(key.strip())
        if not entries:
            raise ValueError("must name at least one client")
        return cls(tuple(entries), tuple(plain_keys))

    def client_for(self, presented: str) -> str | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for name, expected in self.digests:
            if hmac.compare_digest(digest, expected) and found is None:
                found = name
        return found


def _digest_of(key: str) -> bytes:
    if key.startswith(_DIGEST_PREFIX):
        digest = key[len(_DIGEST_PREFIX):].lower()
        if not _HEX_DIGEST.match(digest):
            raise ValueError("a sha256: key must be 64 hex digits")
        return bytes.fromhex(digest)
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"each key must be at least {MIN_KEY_LENGTH} characters")
    return hashlib.sha256(key.encode()).digest()
