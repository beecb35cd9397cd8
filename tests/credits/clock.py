"""A clock the tests set by hand, for CreditBook(clock=...)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(text: str) -> float:
    """``2026-11-24T23:59:59`` (UTC) as a timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, start: str) -> None:
        self.now = utc(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
