"""Fixtures of the worker tests."""

from tests.workers.tripo_standin import stand_in  # noqa: F401  (the Tripo stand-in fixture)
