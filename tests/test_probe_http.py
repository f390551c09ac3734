"""The http probe against loopback servers this test starts (plain and TLS).

The TLS servers use certificates made with ``trustme``: one expiring in
3 days (the probe must report about 3 days), one already expired.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from conftest import free_port
from hypothesis import given
from hypothesis import strategies as st

from pharosd.model import Sample
from pharosd.probes.config import HttpProbeConfig
from pharosd.probes.factory import build_probe
from pharosd.probes.http import HttpProbe, peer_certificate
from pharosd.probes.x509 import not_after
from pharosd.types import Duration, FrozenDict

pytestmark = pytest.mark.timeout(60)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release: threading.Event          # set by the fixture: lets slow handlers finish

    def _answer(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]), b"status page\n")
        elif path == "/echo-headers":
            body = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
            self._answer(200, body)
        elif path == "/bogus-charset":
            self._answer(200, "café ok\n".encode(), {"Content-Type": "text/plain; charset=nope"})
        elif path == "/redirect":
            self._answer(302, b"", {"Location": "/status/200"})
        elif path == "/slow":                        # no answer until released
            self.release.wait(30)
            self._answer(200, b"late\n")
        elif path == "/drip":                        # headers at once, then a byte at a time
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            while not self.release.wait(0.1):
                self.wfile.write(b"x")
                self.wfile.flush()
        else:
            self._answer(200, b"hello, pharos\n")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        self._answer(201, b"got: " + data)

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.release = threading.Event()
        handler = type("H", (Handler,), {"release": self.release})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server(ca: trustme.CA, days: float) -> tuple[Server, float]:
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)
    cert = ca.issue_cert("127.0.0.1", not_after=expires)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return Server(ctx), expires.timestamp()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def probe(url: str, **kw: Any) -> HttpProbe:
    kw.setdefault("timeout", Duration(5.0))
    if "headers" in kw:
        kw["headers"] = FrozenDict(kw["headers"])
    cfg = HttpProbeConfig(name="web", kind="http", url=url, **kw)
    assert cfg.check() == []
    p = build_probe(cfg, 10.0)
    assert isinstance(p, HttpProbe)
    return p


def run(p: HttpProbe, now: float | None = None) -> dict[str, Sample]:
    samples = p.collect(time.time() if now is None else now)
    return {s.metric.removeprefix("probe.web."): s for s in samples}


def status(s: dict[str, Sample]) -> tuple[float, str]:
    return s["status"].value, s["status"].note or ""


# -- plain http ------------------------------------------------------------------------------


def test_ok(server):
    s = run(probe(server.url("/")))
    code, note = status(s)
    assert code == 0 and note.startswith(f"GET {server.url('/')}: 200 OK in ")
    assert s["up"].value == 1 and s["status_code"].value == 200
    assert 0 <= s["latency_seconds"].value < 5
    assert "cert_expiry_days" not in s
    assert s["state"].value == 0


def test_unexpected_status_fails_with_the_level(server):
    s = run(probe(server.url("/status/500")))
    assert status(s) == (2, f"GET {server.url('/status/500')}: status 500 Internal Server "
                            "Error, expected 200..399")
    assert s["up"].value == 0 and s["status_code"].value == 500
    s = run(probe(server.url("/status/404"), level="warning"))
    assert status(s)[0] == 1 and s["state"].value == 1


def test_expected_status_list_and_range(server):
    assert status(run(probe(server.url("/status/404"), status=(404, 410))))[0] == 0
    s = run(probe(server.url("/status/200"), status=(404, 410)))
    assert status(s)[1].endswith("status 200 OK, expected 404, 410")
    assert status(run(probe(server.url("/status/503"), status_min=500,
                            status_max=503)))[0] == 0
    assert status(run(probe(server.url("/status/204"), status_min=200,
                            status_max=203)))[0] == 2


def test_body_regex(server):
    assert status(run(probe(server.url("/"), body_regex=r"hello, \w+")))[0] == 0
    s = run(probe(server.url("/"), body_regex=r"^goodbye"))
    assert status(s) == (2, f"GET {server.url('/')}: status 200 OK, body does not match "
                            "'^goodbye'")
    assert s["status_code"].value == 200 and s["up"].value == 0


def test_unknown_charset_falls_back_to_utf8(server):
    s = run(probe(server.url("/bogus-charset"), body_regex="café ok"))
    assert status(s)[0] == 0, status(s)


def test_headers_method_and_body_are_sent(server):
    p = probe(server.url("/echo-headers"), headers={"X-Pharos": "yes please"},
              body_regex=r"(?m)^X-Pharos: yes please$")
    assert status(run(p))[0] == 0
    p = probe(server.url("/post"), method="POST", body="ping", status=(201,),
              body_regex="^got: ping$")
    assert status(run(p))[0] == 0
    s = run(probe(server.url("/"), method="HEAD"))
    assert status(s)[0] == 0 and s["status_code"].value == 200


def test_redirects(server):
    s = run(probe(server.url("/redirect")))
    assert status(s)[0] == 0 and s["status_code"].value == 302
    s = run(probe(server.url("/redirect"), follow_redirects=True))
    assert status(s)[0] == 0 and s["status_code"].value == 200


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/"
    s = run(probe(url))
    code, note = status(s)
    assert code == 2 and note.startswith(f"GET {url}: ") and "Connection refused" in note
    assert s["up"].value == 0
    assert "status_code" not in s and "latency_seconds" not in s


def test_server_that_never_answers_times_out(server):
    s = run(probe(server.url("/slow"), timeout=Duration(1.0)))
    assert status(s) == (2, f"GET {server.url('/slow')}: timed out after 1s")
    assert s["up"].value == 0


def test_dripping_server_is_cut_at_the_deadline_and_never_piles_up(server):
    p = probe(server.url("/drip"), timeout=Duration(1.0), body_regex="never")
    s = run(p)
    assert status(s) == (2, f"GET {server.url('/drip')}: timed out after 1s")
    # the request is still running on its thread: the next check does not start another
    s = run(p)
    assert status(s)[1].endswith("the previous request is still running, over 1s")
    server.release.set()
    assert p._straggler is not None
    p._straggler.join(10)
    assert not p._straggler.is_alive()
    s = run(probe(server.url("/"), timeout=Duration(1.0)))
    assert status(s)[0] == 0


# -- https -------------------------------------------------------------------------------


def test_tls_certificate_expiring_in_3_days(ca, ca_file):
    srv, expires = tls_server(ca, days=3)
    try:
        now = time.time()
        s = run(probe(srv.url("/", "https"), ca_file=ca_file), now)
        assert status(s)[0] == 0, status(s)
        assert s["cert_expiry_days"].value == pytest.approx((expires - now) / 86400)
        assert 2.99 < s["cert_expiry_days"].value <= 3.0
        assert s["up"].value == 1
    finally:
        srv.close()


def test_tls_verification_is_on_by_default(ca):
    srv, expires = tls_server(ca, days=3)
    try:
        now = time.time()
        s = run(probe(srv.url("/", "https")), now)
        code, note = status(s)
        assert code == 2 and "TLS error" in note and "certificate verify failed" in note
        # the expiry is still reported: it is read without verification
        assert s["cert_expiry_days"].value == pytest.approx((expires - now) / 86400)
        s = run(probe(srv.url("/", "https"), insecure=True), now)
        assert status(s)[0] == 0 and s["cert_expiry_days"].value > 2.99
    finally:
        srv.close()


def test_expired_certificate(ca, ca_file):
    srv, _expires = tls_server(ca, days=-2)
    try:
        s = run(probe(srv.url("/", "https"), ca_file=ca_file))
        code, note = status(s)
        assert code == 2 and "expired" in note, note
        assert -2.01 < s["cert_expiry_days"].value < -1.99
    finally:
        srv.close()


def test_unreadable_ca_file_is_unknown(server, tmp_path):
    s = run(probe(server.url("/", "http").replace("http:", "https:"),
                  ca_file=str(tmp_path / "missing.pem")))
    code, note = status(s)
    assert code == 3 and note.startswith("check failed: ")


# -- the certificate reader --------------------------------------------------------------------


def test_not_after_matches_the_certificate(ca):
    from cryptography import x509

    for days in (3, 400, -2, 20000):     # 20000 days: past 2049, a GeneralizedTime
        expires = (dt.datetime.now(dt.UTC).replace(microsecond=0)
                   + dt.timedelta(days=days))
        leaf = ca.issue_cert("example.test", not_after=expires)
        pem = leaf.cert_chain_pems[0].bytes()
        cert = x509.load_pem_x509_certificate(pem)
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        assert not_after(der) == expires.timestamp()
        theirs = getattr(cert, "not_valid_after_utc", None)   # cryptography >= 42
        if theirs is None:
            theirs = cert.not_valid_after.replace(tzinfo=dt.UTC)
        assert not_after(der) == theirs.timestamp()


def test_peer_certificate_reads_the_served_certificate(ca):
    srv, expires = tls_server(ca, days=3)
    try:
        der = peer_certificate("127.0.0.1", srv.port, 5.0)
        assert not_after(der) == expires
    finally:
        srv.close()


@given(st.binary(max_size=300))
def test_not_after_rejects_garbage_with_value_error(data):
    with contextlib.suppress(ValueError):
        not_after(data)


def test_config_checks():
    def issues(**kw: Any) -> list[str]:
        base: dict[str, Any] = {"name": "web", "kind": "http", "url": "http://127.0.0.1/"}
        base.update(kw)
        return [f for f, _ in HttpProbeConfig(**base).check()]

    assert issues() == []
    assert issues(url="ftp://x/") == ["url"]
    assert issues(url="http:///nohost") == ["url"]
    assert issues(status=(99,)) == ["status"]
    assert issues(status_min=500, status_max=400) == ["status_max"]
    assert issues(body_regex="(") == ["body_regex"]
    assert issues(insecure=True, ca_file="/x") == ["ca_file"]
    assert issues(name="bad name") == ["name"]
    assert issues(timeout=Duration(0)) == ["timeout"]
