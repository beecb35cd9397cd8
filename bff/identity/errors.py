"""Why a token was refused, and when identity cannot be checked at all."""

from __future__ import annotations

# The reasons an InvalidToken names; the web layer may answer them in a 401 body.
MISSING = "missing token"
MALFORMED = "malformed token"
MISSING_KEY_ID = "missing key id"
UNKNOWN_KEY_ID = "unknown key id"
ALGORITHM_NOT_ALLOWED = "algorithm not allowed"
ALGORITHM_KEY_MISMATCH = "algorithm does not match the key"
BAD_SIGNATURE = "bad signature"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
ISSUED_IN_FUTURE = "issued in the future"
WRONG_ISSUER = "wrong issuer"
WRONG_AUDIENCE = "wrong audience"
WRONG_TYPE = "wrong token type"
WRONG_AUTHORIZED_PARTY = "wrong authorized party"


def missing_claim(name: str) -> str:
    return f"missing claim {name}"


class InvalidToken(Exception):
    """The token was refused (answer 401). The message is the reason alone: it never
    carries the token or any part of it, so it is safe to log and to answer."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IdentityUnavailable(Exception):
    """The issuer's keys could not be fetched and none are cached (answer 503 with
    Retry-After: retry_after_seconds, rounded up)."""

    def __init__(self, retry_after_seconds: float):
        super().__init__(f"the identity issuer's keys are unavailable; retry in {retry_after_seconds:.0f} s")
        self.retry_after_seconds = retry_after_seconds
