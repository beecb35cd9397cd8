"""The Flask application factory."""

from __future__ import annotations

import time

from flask import Flask, g, request, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from bff.logs import configure_logging, log_mode, new_request_id, set_request_id
from bff.settings import Settings
from bff.tasks.services import Services
from bff.web.access import record_request
from bff.web.clients import Identity, SecurityDocs, identify_client, sign_in_help
from bff.web.errors import BffApi, register_error_handlers
from bff.web.fast_paths import FastPaths
from bff.web.rate_limits import init_rate_limits
from bff.web.status_reads import init_status_reads
from bff.web.unsettled import UnsettledCreates

from .cli import credits_cli
from .routes import generate, health, me, metrics, styles, tasks
from .services import services

API_DESCRIPTION = """The makeit3d backend: turns prompts, sketches and photos into 3D models
(Tripo) and 2D concept images (OpenAI).

Every generation endpoint answers `202 Accepted` with a `task_id` and a `status_url`;
poll the status until it is `completed` or `failed`. Errors always have the shape
`{"code", "status", "message", "reason"?, "errors"?}`; each response carries an `X-Request-ID`.
"""

_SWAGGER_ASSETS = "/docs/assets/"
# JSON bodies are small; anything larger is a mistake or an attack (answered 413).
MAX_REQUEST_BYTES = 1024 * 1024
SANDBOX_NOTICE = (
    "**SANDBOX MODE**: this instance talks to provider stand-ins, not to Tripo or OpenAI. "
    "Results are sample files and cost nothing.\n\n"
)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.bff_log_level, settings.secrets())
    log_mode(settings)
    app = Flask(__name__)
    app.config.update(_openapi_config(settings), MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES)
    # Bounded: a gevent process serves up to WEB_CONNECTIONS requests at once, and a slow
    # Redis must not make it open as many connections (plans cap them: Heroku's Mini at 20).
    app_services = Services.build(settings, max_redis_connections=settings.bff_redis_max_connections)
    app.extensions["bff"] = app_services
    app.extensions["bff_unsettled_creates"] = UnsettledCreates(app_services.redis, app_services.store)

    identity = Identity.from_settings(settings)
    # Swagger UI's "Authorize" button then sends the credentials each route needs.
    api = BffApi(app, spec_kwargs={"extra_plugins": [SecurityDocs(identity, sign_in_help(settings))]})
    for blueprint in (generate.blp, tasks.blp, me.blp, styles.blp, health.blp):
        api.register_blueprint(blueprint)
    if settings.bff_metrics_token:  # else /metrics does not exist: 404
        app.register_blueprint(metrics.blp)
    register_error_handlers(app)
    _register_request_hooks(app)
    app.before_request(lambda: identify_client(identity))
    init_rate_limits(app, app_services.redis)
    reader = init_status_reads(app, app_services.redis, app_services.store)
    app.add_url_rule(f"{_SWAGGER_ASSETS}<path:filename>", "swagger_ui_assets", _swagger_asset)
    app.cli.add_command(credits_cli)
    # Railway and Heroku put exactly one proxy in front: trust its forwarding headers. Behind
    # it, plain status reads and valid JSON generations are answered before Flask (see fast_paths).
    fast_paths = FastPaths(app, app_services, identity, reader, app.extensions["bff_unsettled_creates"],
                           max_body_bytes=MAX_REQUEST_BYTES)
    app.wsgi_app = ProxyFix(fast_paths, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    return app


def _openapi_config(settings: Settings) -> dict:
    description = (SANDBOX_NOTICE if settings.bff_sandbox else "") + API_DESCRIPTION
    if settings.bff_auth_issuer:
        description += "\n" + sign_in_help(settings) + "\n"
    return {
        "API_TITLE": "makeit3d BFF",
        "API_VERSION": "1.0",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        # Served by the app itself so the docs work with no internet.
        "OPENAPI_SWAGGER_UI_URL": _SWAGGER_ASSETS,
        # Links to an operation can be shared; "Try it out" is open at once.
        "OPENAPI_SWAGGER_UI_CONFIG": {"deepLinking": True, "tryItOutEnabled": True},
        "API_SPEC_OPTIONS": {"info": {"description": description}},
    }


def _swagger_asset(filename: str):
    return send_from_directory(swagger_ui_path, filename)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        g.started = time.monotonic()
        g.request_id = new_request_id(request.headers.get("X-Request-ID"))
        set_request_id(g.request_id)

    @app.after_request
    def return_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id") or ""
        record_request(services().metrics, request.endpoint, request.method, request.path, response.status_code,
                       g.get("started", time.monotonic()))
        return response
