"""The uplink's kept-alive transport and its one-thread launcher, against receivers on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from email.utils import formatdate
from typing import Any

import pytest
import trustme
from peers import free_port
from peers.receiver import HANG, Receiver, Request

from pharosd.clock import FakeClock
from pharosd.pipeline.config import RemoteWriteConfig, TLSConfig
from pharosd.pipeline.connection import ConnectionTransport, SerialLauncher
from pharosd.pipeline.receiver import ReceiverSettings, resolve_settings
from pharosd.pipeline.transport import Reply

pytestmark = pytest.mark.timeout(60)


def settings(url: str, **kw: Any) -> ReceiverSettings:
    return resolve_settings(RemoteWriteConfig(url=url, **kw), index=0, host="h", capacity=100)


class KeepAliveServer:
    """An HTTP/1.1 server that keeps connections open; counts connections and requests.

    ``close_after``: it hangs up (without answering) the request after that many on
    one connection, as a receiver that drops idle keep-alive connections does."""

    def __init__(self, close_after: int | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.bodies: list[bytes] = []
        self.close_after = close_after
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        served = 0
        with conn:
            while True:
                line = f.readline()
                if not line:
                    return
                length = 0
                while (h := f.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = f.read(length)
                if self.close_after is not None and served >= self.close_after:
                    return              # hang up without an answer
                self.bodies.append(body)
                served += 1
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_posts_reuse_one_connection_and_reconnect_when_the_receiver_hung_up() -> None:
    server = KeepAliveServer()
    t = ConnectionTransport()
    s = settings(f"http://127.0.0.1:{server.port}/api/v1/write")
    try:
        for i in range(5):
            assert t.post(s, b"b%d" % i) == Reply(204, "", None)
        assert server.connections == 1
        assert server.bodies == [b"b0", b"b1", b"b2", b"b3", b"b4"]
    finally:
        t.close()
        server.close()
    # A receiver that drops a kept-alive connection: the request goes again on a new one.
    server = KeepAliveServer(close_after=1)
    t = ConnectionTransport()
    s = settings(f"http://127.0.0.1:{server.port}/api/v1/write")
    try:
        assert t.post(s, b"first").status == 204
        assert t.post(s, b"second").status == 204
        assert server.bodies == [b"first", b"second"]
        assert server.connections == 2
    finally:
        t.close()
        server.close()


def test_answers_statuses_retry_after_and_a_capped_body() -> None:
    clock = FakeClock(wall=1_700_000_000.0)
    answers = iter([
        (204, {}, b""),
        (429, {"Retry-After": "3"}, b"slow down"),
        (503, {"Retry-After": formatdate(clock.wall() + 40, usegmt=True)}, b"x" * 50_000),
        (200, {}, b"ok"),
    ])

    def respond(r: Request) -> tuple[int, dict[str, str], bytes]:
        return next(answers)

    with Receiver(respond) as rec:
        t = ConnectionTransport(clock)
        s = settings(rec.url + "/api/v1/write?tenant=a", headers={"X-Scope-OrgID": "t1"})
        try:
            assert t.post(s, b"one") == Reply(204, "", None)
            assert t.post(s, b"two") == Reply(429, "slow down", 3.0)
            third = t.post(s, b"three")
            assert t.post(s, b"four") == Reply(200, "", None)
        finally:
            t.close()
        assert (third.status, len(third.body), third.retry_after) == (503, 2048, 40.0)
        reqs = rec.received()
        assert [r.body for r in reqs] == [b"one", b"two", b"three", b"four"]
        assert reqs[0].path == "/api/v1/write?tenant=a"
        assert reqs[0].headers["x-scope-orgid"] == "t1"
        assert reqs[0].headers["content-encoding"] == "snappy"


def test_a_refused_connection_raises_and_the_next_post_connects_again() -> None:
    port = free_port()
    t = ConnectionTransport()
    try:
        with pytest.raises(ConnectionRefusedError):
            t.post(settings(f"http://127.0.0.1:{port}/w", timeout=2.0), b"x")
        with Receiver(port=port) as rec:
            assert t.post(settings(rec.url + "/w"), b"y").status == 200
            assert rec.received()[0].body == b"y"
    finally:
        t.close()


def test_abort_ends_a_request_the_receiver_never_answers() -> None:
    with Receiver(lambda r: HANG) as rec:
        t = ConnectionTransport()
        errors: list[BaseException] = []

        def post() -> None:
            try:
                t.post(settings(rec.url + "/w", timeout=30.0), b"x")
            except BaseException as e:
                errors.append(e)

        th = threading.Thread(target=post)
        th.start()
        assert rec.wait_for(lambda reqs: len(reqs) == 1, 10)
        started = time.monotonic()
        t.abort()
        th.join(10)
        assert not th.is_alive() and errors, "abort() did not end the request"
        assert time.monotonic() - started < 10
        assert isinstance(errors[0], OSError)      # the connection was shut down
        t.close()


def test_the_deadline_bounds_a_silent_receiver() -> None:
    with Receiver(lambda r: HANG) as rec:
        t = ConnectionTransport()
        try:
            with pytest.raises(TimeoutError):
                t.post(settings(rec.url + "/w", timeout=0.5), b"x")
        finally:
            t.close()


def test_tls_trusts_the_configured_ca_only(tmp_path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with Receiver(ssl_context=server_ctx) as rec:
        t = ConnectionTransport()
        try:
            trusted = settings(rec.url + "/w", tls=TLSConfig(ca_file=str(ca_file)))
            assert t.post(trusted, b"x").status == 200
            with pytest.raises(ssl.SSLError):       # the system's CAs do not know it
                t.post(settings(rec.url + "/w"), b"y")
            assert t.post(settings(rec.url + "/w", tls=TLSConfig(insecure=True)),
                          b"z").status == 200
        finally:
            t.close()
        assert [r.body for r in rec.received()] == [b"x", b"z"]


def test_a_proxied_receiver_goes_through_the_requests_transport(monkeypatch) -> None:
    seen: list[str] = []
    with Receiver(lambda r: (seen.append(r.path) or 200, {}, b"")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        t = ConnectionTransport()
        try:
            # not loopback, so the environment's proxy applies: the proxy gets the
            # absolute URL (a kept-alive direct connection would have failed to resolve)
            assert t.post(settings("http://receiver.invalid:9/api/v1/write"), b"x").status == 200
        finally:
            t.close()
    assert seen == ["http://receiver.invalid:9/api/v1/write"]


def test_serial_launcher_runs_jobs_in_order_on_one_thread_that_ends_when_idle() -> None:
    launcher = SerialLauncher(name="test-sender", idle_exit=0.2)
    ran: list[tuple[int, str]] = []
    done = threading.Event()

    def job(i: int) -> None:
        if i == 1:
            raise RuntimeError("a failing job does not end the thread")
        ran.append((i, threading.current_thread().name))
        if i == 3:
            done.set()

    for i in range(4):
        launcher.launch(lambda i=i: job(i))
    assert done.wait(5)
    assert [i for i, _ in ran] == [0, 2, 3]
    assert {name for _, name in ran} == {"test-sender"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            th.name == "test-sender" for th in threading.enumerate()):
        time.sleep(0.05)
    assert not any(th.name == "test-sender" for th in threading.enumerate())
    again = threading.Event()
    launcher.launch(again.set)
    assert again.wait(5)
