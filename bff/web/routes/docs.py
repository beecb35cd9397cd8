"""Documenting a route's error answers in the OpenAPI spec, in one line per route."""

from __future__ import annotations

from http import HTTPStatus

from flask_smorest import Blueprint


def error_responses(blp: Blueprint, *statuses: int):
    """Document each status with the shared error schema flask-smorest registers for it."""

    def decorate(view):
        for status in statuses:
            view = blp.alt_response(status, response=HTTPStatus(status).name)(view)
        return view

    return decorate
