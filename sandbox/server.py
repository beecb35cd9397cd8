"""Run a WSGI app on a real local port in a background thread.

Tests use it to talk to the Tripo stand-in over real HTTP; a frontend developer can
run the stand-in on its own with `python -m sandbox.server --port 8765`.
"""

import argparse
import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

# serve_forever checks for shutdown this often; the 0.5 s default makes every
# test-fixture teardown wait that long.
_POLL_SECONDS = 0.05


@dataclass
class RunningServer:
    """A server started by serve_in_thread."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def base_url(self) -> str:
        host = self.server.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Stop accepting requests and free the port; handler threads are daemons and
        are not waited for, so a deliberately slow response does not hold this up."""
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` on host:port (0 picks a free port) from a daemon thread."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": _POLL_SECONDS},
        name=f"wsgi-{server.server_port}", daemon=True,
    )
    thread.start()
    return RunningServer(server, thread)


def main(argv=None) -> None:
    """Serve the Tripo stand-in in the foreground until interrupted."""
    from sandbox.tripo import create_tripo_app

    parser = argparse.ArgumentParser(description="Run the Tripo apiv3 stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="tsk_sandbox")
    parser.add_argument("--task-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    running = serve_in_thread(
        create_tripo_app(api_key=args.api_key, task_seconds=args.task_seconds), args.host, args.port
    )
    print(f"Tripo stand-in at {running.base_url}/v3 (key {args.api_key}); Ctrl-C stops it")
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.shutdown()


if __name__ == "__main__":
    main()
