"""Requests that gunicorn answers itself, before the app is reached (a malformed request,
a request line or headers over its limits), get the API's JSON error shape too."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = pytest.mark.slow

MALFORMED_REQUESTS = {
    400: b"GET /healthz HTTP/1.1\r\nHost: bff\r\nBad Header Name: x\r\n\r\n",
    414: b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: bff\r\n\r\n",
    431: b"GET /healthz HTTP/1.1\r\nHost: bff\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n",
}


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read the answer until gunicorn closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("status", sorted(MALFORMED_REQUESTS))
def test_an_error_gunicorn_answers_itself_has_the_json_error_shape(web_role, status):
    answered, headers, body = exchange(web_role.port, MALFORMED_REQUESTS[status])

    assert answered == status
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)
    assert set(error) == {"code", "status", "message"} and error["code"] == status and error["message"]
