"""The makeit3d BFF web application."""

from .app import create_app

__all__ = ["create_app"]
