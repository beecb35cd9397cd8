"""WSGI entry point: ``gunicorn wsgi:app``."""

from bff.settings import load_settings_or_exit
from bff.web import create_app

app = create_app(load_settings_or_exit())
