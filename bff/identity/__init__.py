"""Who is calling, checked without Flask: app keys (app_keys.py), users' sign-in tokens
and App Check tokens (tokens.py, keys.py).

The web layer reads the headers, calls `TokenVerifier.verify` and answers
401 on InvalidToken (its reason is safe to show) and 503 with Retry-After on
IdentityUnavailable.
"""

from .errors import IdentityUnavailable, InvalidToken
from .tokens import (
    TokenVerifier,
    VerifiedToken,
    app_check_verifier,
    claim_at,
    require_authorized_party,
    require_header_type,
)

__all__ = [
    "IdentityUnavailable",
    "InvalidToken",
    "TokenVerifier",
    "VerifiedToken",
    "app_check_verifier",
    "claim_at",
    "require_authorized_party",
    "require_header_type",
]
