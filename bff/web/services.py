"""The app's services, read once per request by a route and handed down from there."""

from __future__ import annotations

from flask import current_app

from bff.tasks.services import Services

from .unsettled import UnsettledCreates


def services() -> Services:
    return current_app.extensions["bff"]


def unsettled_creates() -> UnsettledCreates:
    return current_app.extensions["bff_unsettled_creates"]
