"""A small hostile HTTP server on 127.0.0.1: it logs clients in like exacqVision, then
answers one path the way a broken or malicious server would (giant, endless, trickled
or absurdly nested bodies, huge Retry-After, unknown answer shapes, bad stream parts).

Raw sockets, not a framework: the point is to send what no well-behaved server sends.
Its pacing (a byte every so often) is the attack itself, not test synchronisation.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

Behaviour = Callable[[socket.socket], None]

CAMERAS = {"name": "hostile", "timezone": 0, "Cameras": [{"id": 4593152, "name": "Lobby", "formats": [0, 5, 6]}]}


def answer(sock: socket.socket, body: bytes, status: str = "200 OK", headers: dict[str, str] | None = None) -> None:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json", **(headers or {})}.items())
    sock.sendall(head.encode() + b"\r\n" + body)


def json_answer(payload: Any) -> Behaviour:
    return lambda sock: answer(sock, json.dumps(payload).encode())


def giant_json(size: int) -> Behaviour:
    """Announces `size` bytes and starts sending them."""

    def send(sock: socket.socket) -> None:
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
        sock.sendall(b'{"Cameras": [' + b" " * (1 << 20))

    return send


def endless_chunked(sock: socket.socket) -> None:
    """A chunked JSON body that never ends."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b" " * (1 << 16)
    sock.sendall(b'D\r\n{"Cameras": [\r\n')
    while True:
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))


def trickle(prefix: bytes, every: float) -> Behaviour:
    """`prefix` at once, then one byte every `every` seconds, for ever."""

    def send(sock: socket.socket) -> None:
        sock.sendall(prefix)
        while True:
            time.sleep(every)
            sock.sendall(b" ")

    return send


def deep_json(depth: int) -> Behaviour:
    return lambda sock: answer(sock, b"[" * depth + b"]" * depth)


def native_parts(parts: list[bytes], then_close: bool = True) -> Behaviour:
    def send(sock: socket.socket) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=evframe\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for part in parts:
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        if not then_close:
            while True:
                sock.sendall(b"%x\r\n%s\r\n" % (1 << 16, b"\0" * (1 << 16)))

    return send


class HostileServer:
    """`routes` maps a path (without /v1) to a behaviour; login.web and config.web are sane
    unless overridden. Use as a context manager; `url` is an exacqvision:// URL."""

    def __init__(self, routes: dict[str, Behaviour]) -> None:
        self.routes = {"/login.web": json_answer({"success": True, "sessionId": "hostile-session"}),
                       "/config.web": json_answer(CAMERAS), "/logout.web": json_answer(None), **routes}  # fmt: skip
        self.requests: list[str] = []
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = self.request.recv(65536)
                    if not more:
                        return
                    data += more
                head = data.split(b"\r\n", 1)[0].decode("latin-1")
                path, _, query = head.split()[1].partition("?")
                path = path.removeprefix("/v1")
                server.requests.append(path)
                behaviour = server.route(path, query)
                try:
                    behaviour(self.request)
                except OSError:
                    pass  # the client hung up: the attack is over

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def route(self, path: str, query: str) -> Behaviour:
        """The longest route key `path[?fragment]` whose fragment is in the query."""
        for key in sorted(self.routes, key=len, reverse=True):
            key_path, _, fragment = key.partition("?")
            if key_path == path and fragment in query:
                return self.routes[key]
        return lambda sock: answer(sock, b"{}", "404 Not Found")

    def url(self, **query: Any) -> str:
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"exacqvision://admin:pw@127.0.0.1:{self.port}/?{tail}"

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
