"""gunicorn settings kept in code: its own log lines in the BFF's JSON format, and a hook
that flushes a worker's metrics as it exits.

gunicorn sets its logging up before it loads the app, so without this its start-up and
error lines would not be JSON.
"""

from bff.web.services import services

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "bff.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}


def worker_exit(server, worker) -> None:
    """Send this worker's last second of HTTP counts (buffered, see bff.metrics) before it goes."""
    app = getattr(worker, "wsgi", None)  # None when the app failed to load
    if app is not None:
        with app.app_context():
            services().metrics.close()
