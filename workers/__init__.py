"""Dramatiq workers: the only code that calls the providers.

Start them with ``dramatiq workers.actors``; importing ``workers.actors`` sets up the
broker first (actors bind to the broker current at import time).
"""
