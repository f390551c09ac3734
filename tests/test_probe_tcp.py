"""The tcp probe against loopback servers this test starts."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import free_port

from pharosd.model import Sample
from pharosd.probes.config import TcpProbeConfig
from pharosd.probes.factory import build_probe
from pharosd.probes.tcp import TcpProbe
from pharosd.types import Duration

pytestmark = pytest.mark.timeout(60)


class Server:
    """Accepts on 127.0.0.1 and runs ``handle(conn)`` for each connection."""

    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.handle = handle
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._one, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _one(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handle(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()


def greeter(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"220 pharos test ready\r\n")


def echo(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(5)
    data = conn.recv(1024)
    conn.sendall(b"echo: " + data)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def dripper(conn: socket.socket, stop: threading.Event) -> None:
    while not stop.wait(0.1):
        conn.sendall(b".")


@pytest.fixture
def serve() -> Iterator[Callable[[Any], Server]]:
    servers: list[Server] = []

    def start(handle: Any) -> Server:
        s = Server(handle)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def probe(port: int, **kw: Any) -> TcpProbe:
    kw.setdefault("timeout", Duration(5.0))
    cfg = TcpProbeConfig(name="port", kind="tcp", port=port, **kw)
    assert cfg.check() == []
    p = build_probe(cfg, 10.0)
    assert isinstance(p, TcpProbe)
    return p


def run(p: TcpProbe) -> dict[str, Sample]:
    return {s.metric.removeprefix("probe.port."): s for s in p.collect(time.time())}


def test_connect_ok(serve):
    srv = serve(greeter)
    s = run(probe(srv.port))
    assert s["status"].value == 0
    assert (s["status"].note or "").startswith(f"127.0.0.1:{srv.port}: connected in ")
    assert s["up"].value == 1 and 0 <= s["latency_seconds"].value < 5


def test_expect_greeting(serve):
    srv = serve(greeter)
    s = run(probe(srv.port, expect="220 pharos"))
    assert s["status"].value == 0 and (s["status"].note or "").endswith(", got '220 pharos'")
    s = run(probe(srv.port, expect="SSH-2.0"))
    assert s["status"].value == 2
    assert s["status"].note == (f"127.0.0.1:{srv.port}: expected 'SSH-2.0', "
                                "got '220 pharos test ready\\r\\n'")
    assert s["up"].value == 0 and "latency_seconds" in s


def test_send_and_expect(serve):
    srv = serve(echo)
    s = run(probe(srv.port, send="PING\r\n", expect="echo: PING"))
    assert s["status"].value == 0, s["status"].note


def test_refused_is_the_level():
    port = free_port()
    s = run(probe(port))
    assert s["status"].value == 2 and s["status"].note == f"127.0.0.1:{port}: Connection refused"
    assert s["up"].value == 0 and "latency_seconds" not in s
    s = run(probe(port, level="warning"))
    assert s["status"].value == 1 and s["state"].value == 1


def test_silent_peer_times_out(serve):
    srv = serve(silent)
    s = run(probe(srv.port, expect="hello", timeout=Duration(0.5)))
    assert s["status"].value == 2
    assert s["status"].note == f"127.0.0.1:{srv.port}: no expected reply within 500ms"


def test_dripping_peer_cannot_stretch_the_check(serve):
    srv = serve(dripper)
    # The peer drips a byte every 0.1 s forever: only the deadline can end the check.
    s = run(probe(srv.port, expect="never", timeout=Duration(0.5)))
    assert s["status"].value == 2 and "no expected reply within 500ms" in (s["status"].note or "")


def test_closed_without_reply(serve):
    srv = serve(lambda conn, stop: None)
    s = run(probe(srv.port, expect="hi"))
    assert s["status"].note == f"127.0.0.1:{srv.port}: expected 'hi', got nothing"


def test_port_and_host_checks():
    bad = TcpProbeConfig(name="p", kind="tcp", port=70000, host="")
    assert sorted(f for f, _ in bad.check()) == ["host", "port"]
