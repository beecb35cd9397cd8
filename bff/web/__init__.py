"""The web role: the Flask app that validates requests, records tasks and serves their status."""

from .app import create_app

__all__ = ["create_app"]
