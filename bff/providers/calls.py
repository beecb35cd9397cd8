"""What each provider call is, and how it is reported.

A client reports every HTTP call it makes to the ``CallObserver`` it was built with:
which provider, which operation, how it ended, how long it took. The clients know
nothing of where that goes (the workers pass ``bff.metrics.Metrics.provider_request``).

The outcome is ``OK``, or the classification of the failure (``bff.providers.errors``):
``retry`` (may be tried again: a 429, a provider out of reach), ``final`` (refused for
good) or ``unknown`` (sent, fate unknown). Whether a retryable call is in fact tried again
is the caller's decision, made later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import ProviderError

OK = "ok"

CREATE = "create"  # a Tripo task created
READ = "read"  # one Tripo task read
READ_BATCH = "read_batch"  # up to 100 Tripo tasks read in one call
EDIT = "edit"  # an OpenAI image edit
OPERATIONS = frozenset({CREATE, READ, READ_BATCH, EDIT})

# (provider, operation, outcome, seconds)
CallObserver = Callable[[str, str, str, float], None]


def unobserved(provider: str, operation: str, outcome: str, seconds: float) -> None:
    """The observer of a client nobody watches."""


@contextmanager
def observed(observe: CallObserver, provider: str, operation: str) -> Iterator[None]:
    """Report the call made in the block: ``OK``, or the outcome of the ``ProviderError``
    it raised. (Any other exception is a bug, not a provider answer: not reported.)"""
    started = time.perf_counter()
    try:
        yield
    except ProviderError as error:
        observe(provider, operation, error.outcome, time.perf_counter() - started)
        raise
    observe(provider, operation, OK, time.perf_counter() - started)
