"""A hostile HTTP receiver on 127.0.0.1: it reads the request, then misbehaves.

``HostileReceiver(mode)`` answers every POST as ``mode`` says:

* ``drip_body``: a 200 with ``Content-Length: 1000000``, then one body byte
  every ``DRIP`` seconds;
* ``drip_headers``: ``HTTP/1.1 200 OK``, then one header byte every ``DRIP``;
* ``huge_body``: a ``status`` answer with a 200 MiB body, written lazily in
  64 KiB chunks for as long as the client reads;
* ``hang``: nothing, until the receiver stops;
* ``scripted``: ``status``, ``headers`` and ``body`` as given (for fuzzing);
* ``raw``: ``body`` as the whole answer, then the connection is closed.

Each connection records how many bytes it sent and whether the client went
away before the answer was complete (``client_gone``), so a test sees that
a client stopped reading without timing anything.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from dataclasses import dataclass

from peers import free_port
from peers.serving import ServedOnThread

DRIP = 0.05
HUGE = 200 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass
class Conn:
    request_line: str = ""
    sent: int = 0
    complete: bool = False
    client_gone: bool = False


class HostileReceiver(ServedOnThread):
    def __init__(self, mode: str, status: int = 500, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.port = free_port()
        self.conns: list[Conn] = []
        self.gone = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HostileReceiver:
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = Conn()
                with receiver.gone:
                    receiver.conns.append(conn)
                sock: socket.socket = self.request
                try:
                    conn.request_line = _read_request(sock)
                    receiver._answer(sock, conn)
                except OSError:
                    conn.client_gone = True
                finally:
                    with receiver.gone:
                        receiver.gone.notify_all()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._serve(server)
        return self

    def _answer(self, sock: socket.socket, conn: Conn) -> None:
        def send(data: bytes) -> None:
            sock.sendall(data)
            conn.sent += len(data)

        if self.mode == "hang":
            self._stop.wait()
            return
        if self.mode == "drip_headers":
            send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self._stop.wait(DRIP):
                send(b"a")
            return
        if self.mode == "drip_body":
            send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            while not self._stop.wait(DRIP):
                send(b"x")
            return
        if self.mode == "raw":
            send(self.body)
            conn.complete = True
            return
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        if self.mode == "huge_body":
            send(f"HTTP/1.1 {self.status} Oops\r\n{extra}Content-Length: {HUGE}\r\n\r\n"
                 .encode())
            chunk = b"x" * _CHUNK
            while conn.sent < HUGE and not self._stop.is_set():
                send(chunk)
            conn.complete = True
            return
        send(f"HTTP/1.1 {self.status} Whatever\r\n{extra}Content-Length: {len(self.body)}\r\n"
             f"Connection: close\r\n\r\n".encode() + self.body)
        conn.complete = True

    def wait_gone(self, n: int = 1, timeout: float = 20.0) -> bool:
        """Wait until ``n`` connections saw their client go away."""
        with self.gone:
            return self.gone.wait_for(
                lambda: sum(c.client_gone for c in self.conns) >= n, timeout)


def _read_request(sock: socket.socket) -> str:
    """Read one request (headers, then Content-Length bytes of body); its first line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("client closed before sending a request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head.split(b"\r\n", 1)[0].decode("latin-1")
