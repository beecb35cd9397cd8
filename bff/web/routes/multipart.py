"""How request bodies are read: JSON that cannot hurt the process, and a ``multipart``
location where form fields and files are parsed by one schema.

flask-smorest documents one request body per route and parses form fields and files
as separate locations, so a file upload with fields gets an incomplete spec. Reading
both through one location gives one schema, validated together and shown in Swagger UI
as a single ``multipart/form-data`` body with a file picker.

webargs answers 400 only for JSON that does not decode; JSON nested too deeply for the
parser (RecursionError) or with an integer too long to convert (ValueError) would be a
500, so both are made decode errors here.
"""

from __future__ import annotations

import json

import flask_smorest
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict

MULTIPART = "multipart"


class _Parser(FlaskParser):
    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError):
            raise json.JSONDecodeError("not a JSON body this service can read", "(body)", 0) from None


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
