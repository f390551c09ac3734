"""An HTTP receiver on 127.0.0.1 that records every request and answers as scripted.

``Receiver(respond)`` calls ``respond(request)`` for each request to get
``(status, headers, body)``; the default answers 200 (a 204 or 304 goes out
without its body, as HTTP wants). With ``ssl_context``
it speaks HTTPS. ``respond`` may
return ``HANG`` to never answer (until the receiver stops). Every request
is recorded with what was answered, so a test sees retries too.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from peers import free_port, wait_for
from peers.serving import ServedOnThread

HANG: tuple[int, dict[str, str], bytes] = (-1, {}, b"")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int = 0                    # what the receiver answered (-1: never)

    def json(self) -> Any:
        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass    # failed TLS handshakes and hung-up clients are part of the tests


Responder = Callable[[Request], tuple[int, dict[str, str], bytes]]


def ok(_: Request) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b""


class Receiver(ServedOnThread):
    def __init__(self, respond: Responder = ok, port: int | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.respond = respond
        self.ssl_context = ssl_context
        self.port = port or free_port()
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                req = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                              body)
                with receiver._lock:
                    receiver.requests.append(req)
                status, headers, out = receiver.respond(req)
                req.status = status
                if status < 0:
                    receiver._stop.wait()
                    self.close_connection = True   # hang up without an answer
                    return
                if status in (204, 304):
                    out = b""      # no content, as a real server (Go's net/http) enforces:
                                   # bytes after it would be read as the next answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if status not in (204, 304):
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self._serve(server)
        return self

    def received(self, status: int | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if status is None or r.status == status]

    def wait_for(self, pred: Callable[[list[Request]], Any], timeout: float = 30.0) -> Any:
        return wait_for(lambda: pred(self.received()), timeout)
