"""A ``multipart`` argument location: form fields and files parsed by one schema.

flask-smorest documents one request body per route and parses form fields and files
as separate locations, so a file upload with fields gets an incomplete spec. Reading
both through one location gives one schema, validated together and shown in Swagger UI
as a single ``multipart/form-data`` body with a file picker.
"""

from __future__ import annotations

import flask_smorest
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict

MULTIPART = "multipart"


class _Parser(FlaskParser):
    pass


_parser = _Parser()


@_parser.location_loader(MULTIPART)
def _load_form_and_files(request, schema):
    return MultiDictProxy(CombinedMultiDict([request.form, request.files]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _parser
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        MULTIPART: "multipart/form-data",
    }
