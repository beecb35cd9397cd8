"""WSGI entry point: ``gunicorn wsgi:app``."""

from bff import create_app
from bff.settings import load_settings_or_exit

app = create_app(load_settings_or_exit())
