"""A TCP proxy in front of the private Redis that can lose replies: the faults of a
network (or a stalled Redis) at the socket level, with nothing mocked inside the code.

``lose_replies(marker, times)``: the next ``times`` requests whose bytes contain
``marker`` reach Redis and run there, but their connection is closed before the reply
comes back (the client cannot know whether the command ran); with ``then_refuse``,
Redis then looks down. ``refuse()``: every connection is closed at once, as when Redis
is down. ``delay_replies(seconds)``: every reply comes that much later, as from a slow Redis.
"""

from __future__ import annotations

import socket
import threading
import time


class LossyRedisProxy:
    def __init__(self, redis_port: int):
        self._redis_port = redis_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._lock = threading.Lock()
        self._marker = b""
        self._losses = 0
        self._refusing = False
        self._then_refuse = False
        self._reply_delay = 0.0
        self.lost = 0
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_replies(self, marker: bytes, times: int = 1, *, then_refuse: bool = False) -> None:
        with self._lock:
            self._marker, self._losses, self._then_refuse = marker, times, then_refuse

    def delay_replies(self, seconds: float) -> None:
        with self._lock:
            self._reply_delay = seconds

    def refuse(self, refusing: bool = True) -> None:
        with self._lock:
            self._refusing = refusing
            doomed = set(self._open) if refusing else set()
        for sock in doomed:
            _close(sock)

    def close(self) -> None:
        self.refuse()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _close(client)
                continue
            server = socket.create_connection(("127.0.0.1", self._redis_port))
            with self._lock:
                self._open |= {client, server}
            lose_next_reply = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, lose_next_reply), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, lose_next_reply), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, lose_next_reply: threading.Event) -> None:
        while data := _recv(client):
            with self._lock:
                if self._losses and self._marker and self._marker in data:
                    self._losses -= 1
                    self.lost += 1
                    lose_next_reply.set()
            try:
                server.sendall(data)
            except OSError:
                break
        _close(server)

    def _replies(self, server: socket.socket, client: socket.socket, lose_next_reply: threading.Event) -> None:
        while data := _recv(server):
            if lose_next_reply.is_set():  # the command ran; its reply never arrives
                with self._lock:
                    down = self._then_refuse and not self._losses
                if down:
                    self.refuse()
                break
            with self._lock:
                delay = self._reply_delay
            time.sleep(delay)
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client)
        _close(server)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
