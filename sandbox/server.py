"""Run a WSGI app on a real local port in a background thread.

Tests use it to talk to the stand-ins over real HTTP; the stand-ins (and the sandbox's
sign-in issuer) alone can be run with `python -m sandbox.server --port 8765`.
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
    """Serve all provider stand-ins in the foreground until interrupted."""
    from sandbox.app import create_sandbox_app

    parser = argparse.ArgumentParser(
        description="Run the Tripo and OpenAI stand-ins and the sign-in issuer on one port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tripo-api-key", default="tsk_sandbox")
    parser.add_argument("--openai-api-key", default="sk-sandbox")
    parser.add_argument("--task-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    app = create_sandbox_app(tripo_api_key=args.tripo_api_key, openai_api_key=args.openai_api_key,
                             task_seconds=args.task_seconds)
    running = serve_in_thread(app, args.host, args.port)
    print(f"Tripo stand-in at {running.base_url}/tripo/v3, OpenAI stand-in at {running.base_url}/openai/v1, "
          f"sign-in issuer at {running.base_url}/auth (a token: POST {running.base_url}/auth/token "
          '{"user": "alice"}); Ctrl-C stops them')
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.shutdown()


if __name__ == "__main__":
    main()
